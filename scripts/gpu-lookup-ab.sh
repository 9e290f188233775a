#!/usr/bin/env bash
# Two builds of `hps` side by side on the GPU machine, for a change to the
# GPU lookup: run from the repository root there, with the binaries unpacked
# (BASE, default .device/base/hps; NEW, default .device/hps), writing under
# $OUT (or ./gpu-out)/lookup-ab. First `NEW selftest` (its failures stop the
# script); then ROUNDS (default 3) rounds, each running both binaries in
# turn (the order swapped every round): `hps bench --device gpu --markdown`
# and `hps demo --device gpu --cache-type C --json` for each C of CACHES
# (default "dynamic static uvm"). The table at the end holds, per binary and
# round, the seed batch's rows of the dynamic cache at hit rate 1.0 (the
# kernel alone, the device part, the whole call) and the demo's fused
# lookup p50 and batch p50 per cache type; every output is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu-out}/lookup-ab"
mkdir -p "$out"
base=${BASE:-.device/base/hps}
new=${NEW:-.device/hps}
rounds=${ROUNDS:-3}
caches=${CACHES:-dynamic static uvm}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/card.txt"
git rev-parse --short HEAD 2>/dev/null | tee "$out/commit.txt" || true
"$new" selftest > "$out/selftest.txt" 2>&1 || { tail -40 "$out/selftest.txt"; echo "selftest of $new failed"; exit 1; }
tail -3 "$out/selftest.txt"
for round in $(seq 1 "$rounds"); do
    if (( round % 2 == 1 )); then order="base new"; else order="new base"; fi
    for which in $order; do
        if [[ $which == base ]]; then binary=$base; else binary=$new; fi
        "$binary" bench --device gpu --markdown > "$out/bench-$which-$round.md" 2>&1
        for cache in $caches; do
            "$binary" demo --device gpu --cache-type "$cache" --json > "$out/demo-$which-$cache-$round.json" 2>&1
        done
    done
done
python3 - "$out" "$rounds" "$caches" <<'PY'
import json, sys
out, rounds, caches = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
def bench_row(path, needle):
    for line in open(path):
        if needle in line:
            cells = [c.strip() for c in line.strip().strip('|').split('|')]
            return cells[1]
    return '-'
def demo(path):
    text = open(path).read()
    start = text.find('{')
    try:
        fused = json.loads(text[start:])['fused']
        return f"{fused['lookup_p50_us']:.1f} / {fused['p50_us']:.1f}"
    except Exception:
        return 'failed'
header = ['binary', 'round', 'dynamic: kernel alone', 'device part', 'whole call'] + [f'demo {c}: lookup / batch p50 µs' for c in caches]
print('| ' + ' | '.join(header) + ' |')
print('|' + ' --- |' * len(header))
for r in range(1, rounds + 1):
    for which in ['base', 'new']:
        b = f'{out}/bench-{which}-{r}.md'
        cells = [which, str(r),
                 bench_row(b, 'dynamic cache at hit rate 1.0: the lookup kernel alone'),
                 bench_row(b, 'dynamic cache at hit rate 1.0: its lookup from device keys, device part'),
                 bench_row(b, 'dynamic cache at hit rate 1.0: its lookup from device keys, whole call')]
        cells += [demo(f'{out}/demo-{which}-{c}-{r}.json') for c in caches]
        print('| ' + ' | '.join(cells) + ' |')
PY
