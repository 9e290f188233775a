#!/usr/bin/env bash
# The deployed_device_list check on a machine with two GPUs (run from the
# repository root with .device/hps from scripts/build-gpu-binary.sh): one
# model deployed on GPUs 0 and 1, the same 200 keys looked up on each and on
# the CPU, the three answers compared byte for byte; a GPU that is not there
# is refused by name; and the self-test on the second GPU.
set -euo pipefail
dir=$(mktemp -d)
./.device/hps generate --output "$dir" --tables 3 --vocab 1000 --dim 16 --key-type int64 >/dev/null
python3 -c "
import json, sys; p = sys.argv[1]; c = json.load(open(p))
c['models'][0]['deployed_device_list'] = [0, 1]; json.dump(c, open(p, 'w'), indent=4)" "$dir/hps.json"
keys=$(python3 -c "import random; random.seed(1); print(','.join(str(random.randrange(0, 3200)) for _ in range(200)))")
for d in 0 1; do
    ./.device/hps lookup --config "$dir/hps.json" --model 3_table --table 2 --keys "$keys" --device gpu --gpu "$d" --json > "$dir/gpu$d.json"
done
./.device/hps lookup --config "$dir/hps.json" --model 3_table --table 2 --keys "$keys" --device cpu --json > "$dir/cpu.json"
cmp "$dir/gpu0.json" "$dir/cpu.json" && cmp "$dir/gpu1.json" "$dir/cpu.json" && echo "GPU 0, GPU 1 and CPU lookups identical (200 keys)"
./.device/hps lookup --config "$dir/hps.json" --model 3_table --table 2 --keys 1 --device gpu --gpu 2 2>&1 | tail -1 || true
./.device/hps selftest --gpu 1 | tail -1
