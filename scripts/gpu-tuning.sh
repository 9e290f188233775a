#!/usr/bin/env bash
# Kernel variants side by side on the GPU machine (with .device/hps from
# scripts/build-gpu-binary.sh): the lookup rows of `hps bench --device gpu`
# (seed batch fused and unfused, 1M from 4M at vec 128 and 64) for each
# compile-time variant in HPS_GPU_TUNING and each HPS_GPU_FILL_WARPS, then a
# table of all (DIAG_NO_INDEX skips the index and returns wrong vectors: it
# measures the gather alone). Writes under $OUT (or ./gpu-out).
set -euo pipefail
out="${OUT:-gpu-out}/tuning"
mkdir -p "$out"
# Each line: compile-time variant (HPS_GPU_TUNING), warps per multiprocessor
# before a warp takes fewer keys (HPS_GPU_FILL_WARPS), threads per block
# (HPS_GPU_BLOCK), the static index's most load (HPS_GPU_INDEX_LOAD), and the
# keys of the table the 1M random lookups read (HPS_BENCH_TABLE_KEYS).
runs=(
    "|4|256|0.85|4000000"
    "|4|256|0.85|3000000"
    "|4|256|0.85|2000000"
    "|4|256|0.85|1000000"
    "-DINDEX_NO_POLICY|4|256|0.85|2000000"
    "-DDIAG_NO_INDEX|4|256|0.85|4000000"
    "-DDIAG_NO_INDEX|4|256|0.85|1000000"
)
for line in "${runs[@]}"; do
    IFS='|' read -r v f b l k <<< "$line"
    name="$(echo "base $v fill$f block$b load$l keys$k" | tr ' =' '_-')"
    [ -e "$out/$name.md" ] && name="$name-again"
    HPS_GPU_TUNING="$v" HPS_GPU_FILL_WARPS="$f" HPS_GPU_BLOCK="$b" HPS_GPU_INDEX_LOAD="$l" HPS_BENCH_TABLE_KEYS="$k" \
        HPS_BENCH_LOOKUPS_ONLY=1 \
        ./.device/hps bench --device gpu --markdown > "$out/$name.md" 2>&1 || echo "failed: $name"
done
echo "| variant | seed fused µs | seed unfused µs | seed fused, keys from host µs | seed unfused, keys from host µs | 1M vec128 µs | 1M vec64 µs |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for file in "$out"/*.md; do
    # The µs column of the lookup rows, in the order the benchmark prints them.
    times=$(grep -E '^\| (seed batch|1M random)' "$file" | awk -F'|' '{gsub(/ /,"",$3); gsub(/ /,"",$5); printf "%s (%s) | ", $3, $5}')
    echo "| $(basename "$file" .md) | $times"
done
