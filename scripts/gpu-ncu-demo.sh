#!/usr/bin/env bash
# Where the seed batch's lookup kernel spends its time per cache type, on
# the GPU machine (with .device/hps from scripts/build-gpu-binary.sh):
# Nsight Compute reads the counters of the hps_lookup launches of `hps demo
# --device gpu --cache-type C --iterations 3` (LAUNCHES of them, default
# 40: the unfused per-table launches and the fused ones), for each C of
# CACHES (default "static dynamic"), caches left warm and clocks unlocked.
# Prints, per cache type and launch grid (the fused launch has the largest),
# the median of each counter. Writes the raw CSVs under $OUT (or ./gpu-out)/ncu.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu-out}/ncu"
mkdir -p "$out"
ncu=${NCU:-/usr/local/cuda/bin/ncu}
metrics=gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum,lts__t_sector_hit_rate.pct,lts__t_sectors_op_read.sum,lts__t_sectors_op_write.sum,smsp__inst_executed.sum
for cache in ${CACHES:-static dynamic}; do
    "$ncu" --csv --page raw --cache-control none --clock-control none --kernel-name hps_lookup \
        --launch-count "${LAUNCHES:-40}" --metrics "launch__grid_size,$metrics" \
        ./.device/hps demo --device gpu --cache-type "$cache" --iterations 3 > "$out/$cache.csv" 2> "$out/$cache.err" \
        || echo "failed: $cache (see $out/$cache.err)"
done
python3 - "$out" <<'PY'
import csv, glob, os, statistics, sys
names = ["gpu__time_duration.sum", "dram__bytes_read.sum", "dram__bytes_write.sum", "lts__t_sector_hit_rate.pct",
         "lts__t_sectors_op_read.sum", "lts__t_sectors_op_write.sum", "smsp__inst_executed.sum"]
print("| cache | grid | launches | " + " | ".join(names) + " |")
print("| --- | --- | --- | " + " | ".join("---" for _ in names) + " |")
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.csv"))):
    lines = [l for l in open(path) if l.startswith('"')]
    if len(lines) < 3:
        continue
    parsed = list(csv.DictReader(lines))
    units, rows = parsed[0], parsed[1:]   # the second line holds the units
    print(f"units ({os.path.basename(path)}): " + ", ".join(f"{n} {units.get(n, '')}" for n in names[:3]))
    by_grid = {}
    for row in rows:
        by_grid.setdefault(row["launch__grid_size"], []).append(row)
    for grid, group in sorted(by_grid.items(), key=lambda g: -int(g[0].replace(",", ""))):
        medians = [statistics.median(float(r[n].replace(",", "")) for r in group) for n in names]
        print(f"| {os.path.basename(path)[:-4]} | {grid} | {len(group)} | " + " | ".join(f"{m:,.1f}" for m in medians) + " |")
PY
