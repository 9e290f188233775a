#!/usr/bin/env bash
# Memory of hps serve over a long load: the seed model served over KServe v2
# (TRANSPORT=http or grpc), one-sample requests open loop at RATE req/s
# (default 2000) for DURATION seconds (default 600), the server's resident
# memory (VmRSS) printed every INTERVAL seconds (default 30). Every answer is
# checked; the load's summary is printed last.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${DURATION:-600}
rate=${RATE:-2000}
interval=${INTERVAL:-30}
port=${PORT:-18500}
transport=${TRANSPORT:-http}
case "$transport" in
    http) load_port=$port ;;
    grpc) load_port=$((port + 1)) ;;
    *) echo "TRANSPORT must be http or grpc, not $transport" >&2; exit 2 ;;
esac
dir=$(mktemp -d /tmp/hps-soak-XXXXXX)
server=
cleanup() {
    if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then kill -TERM "$server"; wait "$server" || true; fi
    rm -rf "$dir"
}
trap cleanup EXIT

swift build -c release --product hps >/dev/null
swift build -c release --product hps-load >/dev/null
.build/release/hps generate --output "$dir/model" >/dev/null
.build/release/hps serve --config "$dir/model/hps.json" --http-port "$port" --grpc-port $((port + 1)) \
    --metrics-port $((port + 2)) 2>"$dir/serve.log" &
server=$!
for _ in $(seq 1 600); do
    if curl -sf "http://127.0.0.1:$port/v2/health/ready" >/dev/null 2>&1; then break; fi
    sleep 0.1
done
curl -sf "http://127.0.0.1:$port/v2/health/ready" >/dev/null
echo "commit $(git rev-parse --short HEAD), $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, transport $transport, $rate req/s for $duration s"
rss() { awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$server/status"; }
echo "t=0 s: $(rss) MiB (loaded, no request yet)"
.build/release/hps-load --transport "$transport" --port "$load_port" --model 8_table --model-dir "$dir/model" \
    --connections 8 --rate "$rate" --duration "$duration" >"$dir/load.txt" 2>&1 &
load=$!
start=$(date +%s)
while kill -0 "$load" 2>/dev/null; do
    sleep "$interval"
    kill -0 "$load" 2>/dev/null || break
    echo "t=$(( $(date +%s) - start )) s: $(rss) MiB"
done
wait "$load" || true
echo "after the load: $(rss) MiB"
cat "$dir/load.txt"
