#!/usr/bin/env bash
# What the quantized-storage figures in docs/performance.md come from (issue
# 18): run on the GPU machine from the repository root, with .device/hps built
# by scripts/build-gpu-binary.sh. PART=gpu: the self-test (every storage
# against the CPU tier), the demo per storage and the GPU benchmarks (fp32
# and every storage in one run, with the device-to-device copy). PART=peers:
# the hash map per storage on one core against memcpy, and PyTorch's
# F.embedding on fp32, fp16 and bf16 tables. Writes under $OUT (or ./gpu-out).
set -euo pipefail
out="${OUT:-gpu-out}"
mkdir -p "$out"
part="${PART:-gpu}"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/card.txt"
if [[ "$part" == gpu ]]; then
    ./.device/hps selftest 2>&1 | tee "$out/selftest.txt"
    for storage in fp32 fp16 bf16 int8 fp8; do
        ./.device/hps demo --device gpu --cache-type static --storage "$storage" --json 2>&1 | tee "$out/demo-static-$storage.json"
    done
    ./.device/hps demo --device gpu --cache-type uvm --storage int8 --json 2>&1 | tee "$out/demo-uvm-int8.json"
    ./.device/hps demo --device gpu --cache-type dynamic --storage fp8 --json 2>&1 | tee "$out/demo-dynamic-fp8.json"
    ./.device/hps bench --device gpu --markdown 2>&1 | tee "$out/gpubench.md"
else
    nproc | tee "$out/cores.txt"
    ./.device/hps bench --storage --markdown --runs 11 2>&1 | tee "$out/cpu-storage.md"
    python3 scripts/torch_embedding_baseline.py --json "$out/torch.json" 2>&1 | tee "$out/torch.txt"
fi
