#!/usr/bin/env bash
# Kernel variants side by side on the GPU machine (with .device/hps from
# scripts/build-gpu-binary.sh): the lookup rows of `hps bench --device gpu`
# (seed batch fused and unfused, 1M from 4M at vec 128 and 64) for each
# compile-time variant in HPS_GPU_TUNING and each HPS_GPU_FILL_WARPS, then a
# table of all. Writes under $OUT (or ./gpu-out).
set -euo pipefail
out="${OUT:-gpu-out}/tuning"
mkdir -p "$out"
# Each line: compile-time variant (HPS_GPU_TUNING), warps per multiprocessor
# before a warp takes fewer keys (HPS_GPU_FILL_WARPS), threads per block (HPS_GPU_BLOCK).
runs=(
    "|4|256"
    "|4|128"
    "|4|64"
    "|8|64"
    "|8|128"
    "-DLOAD_L2_256B|4|128"
)
for line in "${runs[@]}"; do
    IFS='|' read -r v f b <<< "$line"
    name="$(echo "base $v fill$f block$b" | tr ' =' '_-')"
    HPS_GPU_TUNING="$v" HPS_GPU_FILL_WARPS="$f" HPS_GPU_BLOCK="$b" HPS_BENCH_LOOKUPS_ONLY=1 \
        ./.device/hps bench --device gpu --markdown > "$out/$name.md" 2>&1 || echo "failed: $name"
done
echo "| variant | seed fused µs | seed unfused µs | 1M vec128 µs | 1M vec64 µs |"
echo "| --- | --- | --- | --- | --- |"
for file in "$out"/*.md; do
    # The µs column of the lookup rows, in the order the benchmark prints them.
    times=$(grep -E '^\| (seed batch|1M random)' "$file" | awk -F'|' '{gsub(/ /,"",$3); gsub(/ /,"",$5); printf "%s (%s) | ", $3, $5}')
    echo "| $(basename "$file" .md) | $times"
done
