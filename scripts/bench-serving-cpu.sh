#!/usr/bin/env bash
# Which side spends the CPU under load: the closed-loop one-sample load of
# scripts/bench-serving.sh (the seed model, 8 connections, every answer
# checked) with the CPU time of `hps serve` (utime + stime from
# /proc/PID/stat, read before and after the run) and of `hps-load` (its user
# + sys, from bash's `time`), each divided by the requests answered.
#
# Uses the release binaries as they are: build them first with
#   swift build -c release --enable-all-traits --product hps
#   swift build -c release --enable-all-traits --product hps-load
# Environment: TRANSPORT (http or grpc, default http), MAX_SECONDS (default
# 30), CONNECTIONS (default 8), PORT (default 18400; PORT+1 gRPC, PORT+2 metrics).
set -euo pipefail
cd "$(dirname "$0")/.."
transport=${TRANSPORT:-http}
seconds=${MAX_SECONDS:-30}
connections=${CONNECTIONS:-8}
port=${PORT:-18400}
case "$transport" in
    http) load_port=$port ;;
    grpc) load_port=$((port + 1)) ;;
    *) echo "TRANSPORT must be http or grpc, not $transport" >&2; exit 2 ;;
esac
dir=$(mktemp -d /tmp/hps-cpu-XXXXXX)
server=
cleanup() {
    if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then kill -TERM "$server"; wait "$server" || true; fi
    rm -rf "$dir"
}
trap cleanup EXIT

.build/release/hps generate --output "$dir/model" >/dev/null
.build/release/hps serve --config "$dir/model/hps.json" --http-port "$port" --grpc-port $((port + 1)) \
    --metrics-port $((port + 2)) 2>"$dir/serve.log" &
server=$!
for _ in $(seq 1 600); do
    if curl -sf "http://127.0.0.1:$port/v2/health/ready" >/dev/null 2>&1; then break; fi
    sleep 0.1
done
load() {
    .build/release/hps-load --transport "$transport" --port "$load_port" --model 8_table --model-dir "$dir/model" \
        --connections "$connections" --json "$@"
}
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

echo "commit $(git rev-parse --short HEAD), $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, transport $transport"
echo "load before: $(uptime | sed 's/.*load average/load average/')"
load --duration 2 --rate 500 >/dev/null  # warm-up, not recorded
before=$(ticks "$server")
TIMEFORMAT='%U %S %R'
{ time load --kind one-sample --duration "$seconds" >"$dir/report.json"; } 2>"$dir/time.txt"
after=$(ticks "$server")
echo "load after: $(uptime | sed 's/.*load average/load average/')"
python3 - "$dir/report.json" "$before" "$after" "$(getconf CLK_TCK)" "$(cat "$dir/time.txt")" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
before, after, hz = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
user, system, wall = map(float, sys.argv[5].split())
n = r["requests"]
server, load = (after - before) / hz, user + system
print(f"{n} requests, {r['failures']} failed, {r['throughput']:.0f} req/s, p50 {r['p50_us'] / 1000:.2f} ms, "
      f"p99 {r['p99_us'] / 1000:.2f} ms, {wall:.1f} s")
print(f"server CPU {server:.2f} s = {server * 1e6 / n:.0f} µs/request; hps-load CPU {load:.2f} s "
      f"(user {user:.2f}, sys {system:.2f}) = {load * 1e6 / n:.0f} µs/request; together {(server + load) * 1e6 / n:.0f} µs/request")
PY
