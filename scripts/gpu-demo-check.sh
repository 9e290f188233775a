#!/usr/bin/env bash
# One binary's check and seed-batch figures on the GPU machine: `hps
# selftest` of BINARY (default .device/hps; its failures stop the script),
# then ROUNDS (default 5) rounds of `hps demo --device gpu --cache-type C
# --storage S --json` for each C of CACHES (default "dynamic static uvm")
# and S of STORAGES (default fp32; vector_storage), and a table of
# each run's fused lookup p50 (events from the keys on the device to the rows
# written) and batch p50 (keys in to predictions out), with the medians over
# the rounds (SELFTEST=0 leaves the self-test out). Writes three files
# under $OUT (or ./gpu-out)/demo-check:
# card.txt, selftest.txt, demos.jsonl (one JSON line per run, with its
# round, cache type and storage).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu-out}/demo-check"
mkdir -p "$out"
binary=${BINARY:-.device/hps}
rounds=${ROUNDS:-5}
caches=${CACHES:-dynamic static uvm}
storages=${STORAGES:-fp32}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/card.txt"
if [ "${SELFTEST:-1}" != 0 ]; then
    "$binary" selftest > "$out/selftest.txt" 2>&1 || { grep -v "^PASS" "$out/selftest.txt" | tail -40; echo "selftest of $binary failed"; exit 1; }
    tail -1 "$out/selftest.txt"
fi
: > "$out/demos.jsonl"
for round in $(seq 1 "$rounds"); do
    for cache in $caches; do
        for storage in $storages; do
            json=$("$binary" demo --device gpu --cache-type "$cache" --storage "$storage" --json 2>/dev/null | sed -n '/^{/,$p' | tr -d '\n')
            python3 -c 'import json, sys; d = json.loads(sys.argv[1]); d["round"] = int(sys.argv[2]); d["cache"] = sys.argv[3]; d["storage"] = sys.argv[4]; print(json.dumps(d))' \
                "$json" "$round" "$cache" "$storage" >> "$out/demos.jsonl"
        done
    done
done
python3 - "$out/demos.jsonl" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
kinds = list(dict.fromkeys((r["cache"], r.get("storage", "fp32")) for r in runs))
print("| cache type | storage | fused lookup p50 per round (µs) | median | batch p50 per round (µs) | median | predictions match |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for cache, storage in kinds:
    mine = [r for r in runs if r["cache"] == cache and r.get("storage", "fp32") == storage]
    lookups = [r["fused"]["lookup_p50_us"] for r in mine]
    batches = [r["fused"]["p50_us"] for r in mine]
    print(f"| {cache} | {storage} | {', '.join(f'{x:.1f}' for x in lookups)} | {statistics.median(lookups):.1f} | "
          f"{', '.join(f'{x:.1f}' for x in batches)} | {statistics.median(batches):.1f} | "
          f"{all(r['predictions_match'] and r['vectors_match_files'] for r in mine)} |")
PY
