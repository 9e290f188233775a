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
# shellcheck source=scripts/serve-seed-model.sh
SKIP_BUILD=1 source scripts/serve-seed-model.sh
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
