#!/usr/bin/env bash
# On the GPU machine, from the repository root, with .device/hps(.xz) and
# .device/hps-load(.xz) built by scripts/build-gpu-binary.sh and tritonclient's
# wheels in .whl/ (the device tool's README says how to fetch them): every
# GPU path against the CPU (`hps selftest`), the served path against the CPU
# through tritonclient (scripts/served_selftest.py), and the seed notebook's
# lookup per cache type (`hps demo --device gpu`). Outputs under $OUT.
set -uo pipefail
out="${OUT:-gpu-out}"
mkdir -p "$out"
for binary in hps hps-load; do
    if [ ! -x ".device/$binary" ] && [ -f ".device/$binary.xz" ]; then xz -dkf ".device/$binary.xz" && chmod +x ".device/$binary"; fi
done
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site
fi
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/card.txt"
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u '+%Y-%m-%d %H:%M UTC')" | tee "$out/when.txt"
./.device/hps selftest > "$out/selftest.txt" 2>&1; selftest=$?
tail -3 "$out/selftest.txt"
PYTHONUNBUFFERED=1 python3 scripts/served_selftest.py --hps .device/hps --out "$out" > "$out/served.txt" 2>&1; served=$?
for cache in static dynamic uvm; do
    ./.device/hps demo --device gpu --cache-type "$cache" --json > "$out/demo-$cache.json" 2>&1
done
echo
echo "selftest exit $selftest: $(grep -cE '^ *(✔|pass|ok)' "$out/selftest.txt" || true) lines passed; last: $(tail -1 "$out/selftest.txt")"
python3 - "$out" <<'PY'
import json, sys, os
out = sys.argv[1]
print("| cache | fused lookup p50 µs | unfused lookup p50 µs | fused batch p50 µs | predictions match | vectors match |")
print("| --- | --- | --- | --- | --- | --- |")
for cache in ["static", "dynamic", "uvm"]:
    try:
        r = json.load(open(os.path.join(out, f"demo-{cache}.json")))
        print(f"| {cache} | {r['fused']['lookup_p50_us']:.1f} | {r['unfused']['lookup_p50_us']:.1f} | {r['fused']['p50_us']:.1f} | {r['predictions_match']} | {r['vectors_match_files']} |")
    except Exception as e:
        print(f"| {cache} | failed: {e} | | | | |")
PY
echo "served selftest exit $served"
tail -12 "$out/served.txt"
