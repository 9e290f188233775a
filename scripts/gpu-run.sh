#!/usr/bin/env bash
# What the GPU lookup figures in docs/performance.md come from: run on the GPU
# machine from the repository root, with .device/hps built by
# scripts/build-gpu-binary.sh. Writes every output under $OUT (or ./gpu-out).
set -euo pipefail
out="${OUT:-gpu-out}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/card.txt"
./.device/hps selftest 2>&1 | tee "$out/selftest.txt"
for cache in static dynamic uvm; do
    ./.device/hps demo --device gpu --cache-type "$cache" --json 2>&1 | tee "$out/demo-$cache.json"
done
./.device/hps bench --device gpu --markdown 2>&1 | tee "$out/gpubench.md"
python3 scripts/torch_embedding_baseline.py --json "$out/torch.json" 2>&1 | tee "$out/torch.txt"
