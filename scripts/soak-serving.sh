#!/usr/bin/env bash
# Memory of hps serve over a long load: the seed model served over KServe v2
# (TRANSPORT=http or grpc), one-sample requests open loop at RATE req/s
# (default 2000) for DURATION seconds (default 600), the server's resident
# memory (VmRSS) printed every INTERVAL seconds (default 30). Every answer is
# checked; the load's summary is printed last. SERVE_FLAGS: extra flags for hps serve.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${DURATION:-600}
rate=${RATE:-2000}
interval=${INTERVAL:-30}
port=${PORT:-18500}
transport=${TRANSPORT:-http}
# shellcheck source=scripts/serve-seed-model.sh
source scripts/serve-seed-model.sh
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
