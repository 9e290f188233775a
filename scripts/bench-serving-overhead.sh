#!/usr/bin/env bash
# The server's own cost per large request, apart from the lookup: `hps serve
# --demo --device cpu` with vec size DIM (default 1, so that the lookup is
# small beside the server's work on 53,248 keys in) answering seed-predict
# and seed-batch requests over HTTP from one connection (closed loop), for
# each binary given, alternating ROUNDS times (default 3), so that binaries
# are compared in the same minutes. Per run: requests/s, p50, and from the
# server's metrics the means per request of its time, the body's arrival,
# the lookup, and what is left (the server's own work: parsing, checks,
# copies, the response, the hops between threads), and the server's CPU
# time per request (utime + stime from /proc). Server on core 0 with
# --threads 1, load generator on core 1 (2-core machine).
#
#   bash scripts/bench-serving-overhead.sh OLD_HPS NEW_HPS
#
# Environment: ROUNDS, DIM, SECONDS_PER_RUN (default 5), KINDS (default
# "seed-predict seed-batch"), HPS_LOAD (default .build/release/hps-load),
# PORT (default 18800; +1 gRPC, +2 metrics).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 HPS [HPS ...]" >&2; exit 2; }
rounds=${ROUNDS:-3}
dim=${DIM:-1}
seconds=${SECONDS_PER_RUN:-5}
kinds=${KINDS:-seed-predict seed-batch}
hps_load=${HPS_LOAD:-.build/release/hps-load}
port=${PORT:-18800}
work=$(mktemp -d /tmp/hps-overhead-XXXXXX)
server=
stop() {
    if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then kill -TERM "$server"; wait "$server" || true; fi
    server=
}
trap 'stop; rm -rf "$work"' EXIT
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
metrics() { curl -sf "http://127.0.0.1:$((port + 2))/metrics"; }

echo "commit $(git rev-parse --short HEAD), $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, dim $dim, ${seconds} s per run"
: >"$work/rows.tsv"
for round in $(seq 1 "$rounds"); do
    order=("$@")
    if [ $((round % 2)) = 0 ]; then order=(); for ((i = $#; i >= 1; i--)); do order+=("${!i}"); done; fi
    for binary in "${order[@]}"; do
        taskset -c 0 "$binary" serve --demo --device cpu --dim "$dim" --threads 1 --http-port "$port" \
            --grpc-port $((port + 1)) --metrics-port $((port + 2)) 2>"$work/serve.log" &
        server=$!
        for _ in $(seq 1 300); do
            curl -sf "http://127.0.0.1:$port/v2/health/ready" >/dev/null 2>&1 && break
            sleep 0.1
        done
        for kind in $kinds; do
            taskset -c 1 "$hps_load" --port "$port" --kind "$kind" --dim "$dim" --connections 1 --duration 1 --json >/dev/null  # warm-up
            metrics >"$work/before"
            before=$(ticks "$server")
            taskset -c 1 "$hps_load" --port "$port" --kind "$kind" --dim "$dim" --connections 1 --duration "$seconds" --json >"$work/run.json"
            after=$(ticks "$server")
            metrics >"$work/after"
            python3 - "$binary" "$kind" "$round" "$work/run.json" "$work/before" "$work/after" "$before" "$after" \
                "$(getconf CLK_TCK)" >>"$work/rows.tsv" <<'PY'
import json, sys
binary, kind, round_, run, before_path, after_path, t0, t1, hz = sys.argv[1:10]
def read(path):
    values = {}
    for line in open(path):
        if line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        base = name.split("{")[0]
        values[base] = values.get(base, 0.0) + float(value)
    return values
b, a = read(before_path), read(after_path)
r = json.load(open(run))
n = a["hps_inference_request_duration_seconds_count"] - b["hps_inference_request_duration_seconds_count"]
def mean_us(h):
    return (a[h + "_sum"] - b[h + "_sum"]) / n * 1e6
server, receive, lookup = (mean_us("hps_inference_request_duration_seconds"),
                           mean_us("hps_inference_request_receive_duration_seconds"), mean_us("hps_lookup_duration_seconds"))
cpu = (int(t1) - int(t0)) / int(hz) / r["requests"] * 1e6
print("\t".join([binary, kind, round_, f"{r['throughput']:.0f}", f"{r['p50_us']:.0f}", f"{server:.0f}", f"{receive:.0f}",
                 f"{lookup:.0f}", f"{server - receive - lookup:.0f}", f"{cpu:.0f}", str(r["failures"])]))
PY
        done
        stop
    done
done
python3 - "$work/rows.tsv" <<'PY'
import statistics, sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
print()
print("| binary | kind | round | req/s | p50 µs | server µs | body's arrival µs | lookup µs | server beyond both µs | server CPU µs per request | failed |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for row in rows:
    print("| " + " | ".join(row) + " |")
print()
print("| binary | kind | medians: p50 µs | server beyond arrival and lookup µs | server CPU µs per request |")
print("| --- | --- | --- | --- | --- |")
for key in dict.fromkeys((r[0], r[1]) for r in rows):
    group = [r for r in rows if (r[0], r[1]) == key]
    med = lambda i: statistics.median(float(r[i]) for r in group)
    print(f"| {key[0]} | {key[1]} | {med(4):.0f} | {med(8):.0f} | {med(9):.0f} |")
PY
