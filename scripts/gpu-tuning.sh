#!/usr/bin/env bash
# Kernel variants side by side on the GPU machine (with .device/hps from
# scripts/build-gpu-binary.sh): the lookup rows of `hps bench --device gpu`
# (seed batch fused and unfused, 1M from 4M at vec 128 and 64) for each
# tuning (`--gpu-tuning`: compile-time defines, warps per multiprocessor
# before a warp takes fewer keys, threads per block, the static index's most
# load) and table size (`--table-keys`), then a table of all
# (define=DIAG_NO_INDEX skips the index and returns wrong vectors: it
# measures the gather alone). Writes under $OUT (or ./gpu-out).
set -euo pipefail
out="${OUT:-gpu-out}/tuning"
mkdir -p "$out"
# Each line: --gpu-tuning, then --table-keys (the keys of the table the 1M random lookups read).
runs=(
    "fill-warps=4,block=256,index-load=0.85|4000000"
    "fill-warps=4,block=256,index-load=0.85|3000000"
    "fill-warps=4,block=256,index-load=0.85|2000000"
    "fill-warps=4,block=256,index-load=0.85|1000000"
    "define=INDEX_NO_POLICY,fill-warps=4,block=256,index-load=0.85|2000000"
    "define=DIAG_NO_INDEX,fill-warps=4,block=256,index-load=0.85|4000000"
    "define=DIAG_NO_INDEX,fill-warps=4,block=256,index-load=0.85|1000000"
)
for line in "${runs[@]}"; do
    IFS='|' read -r tuning keys <<< "$line"
    name="$(echo "$tuning keys$keys" | tr ' =,' '_-_')"
    [ -e "$out/$name.md" ] && name="$name-again"
    ./.device/hps bench --device gpu --markdown --gpu-tuning "$tuning" --table-keys "$keys" > "$out/$name.md" 2>&1 || echo "failed: $name"
done
echo "| variant | seed fused µs | seed unfused µs | seed fused, keys from host µs | seed unfused, keys from host µs | 1M vec128 µs | 1M vec64 µs |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for file in "$out"/*.md; do
    # The µs column of the lookup rows, in the order the benchmark prints them.
    times=$(grep -E '^\| (seed batch|1M random)' "$file" | awk -F'|' '{gsub(/ /,"",$3); gsub(/ /,"",$5); printf "%s (%s) | ", $3, $5}')
    echo "| $(basename "$file" .md) | $times"
done
