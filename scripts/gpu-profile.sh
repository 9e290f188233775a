#!/usr/bin/env bash
# Where the DRAM bytes of a GPU lookup go, on the GPU machine (with
# .device/hps from scripts/build-gpu-binary.sh): Nsight Compute (ncu) reads
# the DRAM and L2 counters of single hps_lookup launches of
# `hps bench --device gpu --runs 5` (each measurement there is 10 warm-up
# launches then 50 timed ones): the fused seed batch, and the 1M random
# lookups from 4M keys at vec 128 and 64, with the index and without it
# (DIAG_NO_INDEX: wrong vectors, the gather alone). Caches are left warm
# and clocks unlocked between launches, as in the timed runs. Writes under
# $OUT (or ./gpu-out) and prints a table.
set -euo pipefail
out="${OUT:-gpu-out}/profile"
mkdir -p "$out"
ncu=${NCU:-/usr/local/cuda/bin/ncu}
metrics=launch__grid_size,launch__registers_per_thread,sm__maximum_warps_avg_per_active_cycle,gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum,lts__t_sector_hit_rate.pct,dram__throughput.avg.pct_of_peak_sustained_elapsed
# hps_lookup launches before each measurement with --runs 5: the seed batch
# fused (60), unfused (8 × 60), both again with keys from host memory, then
# 1M from 4M at vec 128 (60), then at vec 64.
declare -A skips=([seed-fused]=30 [1M-vec128]=1110 [1M-vec64]=1170)
for variant in "" "define=DIAG_NO_INDEX"; do
    for name in seed-fused 1M-vec128 1M-vec64; do
        file="$out/${name}${variant:+_no-index}.csv"
        "$ncu" --csv --page raw --cache-control none --clock-control none \
            --kernel-name hps_lookup --launch-skip "${skips[$name]}" --launch-count 1 --metrics "$metrics" \
            ./.device/hps bench --device gpu --runs 5 ${variant:+--gpu-tuning "$variant"} > "$file" 2> "$file.err" || echo "failed: $name $variant (see $file.err)"
    done
done
python3 - "$out" <<'PY'
import csv, glob, os, sys
print("| launch | grid | registers | warps per SM (most) | µs | DRAM read MB | DRAM written MB | L2 hit % | DRAM throughput % of peak |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.csv"))):
    rows = [r for r in csv.reader(l for l in open(path) if l.startswith('"'))]
    if len(rows) < 3:
        print(f"| {os.path.basename(path)} | no data | | | | | | | |"); continue
    head, units, data = rows[0], rows[1], rows[2]
    v = dict(zip(head, data)); u = dict(zip(head, units))
    def num(name, scale=1.0):
        x = float(v[name].replace(",", ""))
        unit = u.get(name, "")
        factor = {"byte": 1, "Kbyte": 1e3, "Mbyte": 1e6, "Gbyte": 1e9, "nsecond": 1e-3, "ns": 1e-3, "usecond": 1, "us": 1, "msecond": 1e3, "ms": 1e3}.get(unit, 1)
        return x * factor * scale
    print(f"| {os.path.basename(path)[:-4]} | {v['launch__grid_size']} | {v['launch__registers_per_thread']} | "
          f"{v['sm__maximum_warps_avg_per_active_cycle']} | {num('gpu__time_duration.sum'):.1f} | "
          f"{num('dram__bytes_read.sum') / 1e6:.1f} | {num('dram__bytes_write.sum') / 1e6:.1f} | "
          f"{float(v['lts__t_sector_hit_rate.pct']):.1f} | {float(v['dram__throughput.avg.pct_of_peak_sustained_elapsed']):.1f} |")
PY
