#!/usr/bin/env bash
# hps serve under load from hps-load (current figures in docs/performance.md): the
# seed model (8 tables × 10,000 keys, vec 128) served over KServe v2 HTTP or
# gRPC (TRANSPORT=http, the default, or grpc) on loopback; one-sample requests (26 keys × 8 tables) open loop at 2,000 req/s
# for DURATION seconds (default 300) with the server's memory before and
# after; one-sample and seed-batch (256 samples) requests closed loop (the
# most the server gives) for MAX_SECONDS (default 30). Every answer is
# checked (status, size, one vector against the model files).
#
# Environment: DURATION, MAX_SECONDS, RATE (default 2000), CONNECTIONS
# (default 8), PORT (default 18400; PORT+1 for gRPC, PORT+2 for metrics),
# TRANSPORT (http or grpc), SERVE_FLAGS (extra
# flags for hps serve, e.g. --no-dynamic-batching).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${DURATION:-300}
max_seconds=${MAX_SECONDS:-30}
rate=${RATE:-2000}
connections=${CONNECTIONS:-8}
port=${PORT:-18400}
transport=${TRANSPORT:-http}
# shellcheck source=scripts/serve-seed-model.sh
source scripts/serve-seed-model.sh

echo "commit $(git rev-parse --short HEAD), $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, transport $transport, serve flags: ${SERVE_FLAGS:-none}"
echo "load before: $(uptime | sed 's/.*load average/load average/')"
load() {
    .build/release/hps-load --transport "$transport" --port "$load_port" --model 8_table --model-dir "$dir/model" --server-pid "$server" \
        --connections "$connections" --json "$@" || true
}
# A short warm-up, not recorded.
load --duration 2 --rate 500 >/dev/null
open=$(load --kind one-sample --rate "$rate" --duration "$duration")
echo "load after the open loop: $(uptime | sed 's/.*load average/load average/')"
closed=$(load --kind one-sample --duration "$max_seconds")
batch=$(load --kind seed-batch --duration "$max_seconds" --connections 2)
echo "load after: $(uptime | sed 's/.*load average/load average/')"
batches=$(curl -sf "http://127.0.0.1:$((port + 2))/metrics" | grep -E '^hps_lookup_(batches_total|batch_requests_sum)' || true)

python3 - "$open" "$closed" "$batch" "$batches" <<'PY'
import json, sys
rows = [("one sample, open loop", json.loads(sys.argv[1])), ("one sample, closed loop", json.loads(sys.argv[2])),
        ("seed batch, closed loop", json.loads(sys.argv[3]))]
print()
print("| requests | offered | connections | seconds | answered | failed | req/s | p50 ms | p99 ms | p99.9 ms | send lag p50 / p99 ms | server RSS before → after |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for name, r in rows:
    offered = f"{r['target_rate']:.0f} req/s" if r["target_rate"] else "max"
    rss = f"{r.get('server_rss_before_bytes', 0) / 2**20:.0f} → {r.get('server_rss_after_bytes', 0) / 2**20:.0f} MiB"
    print(f"| {name} | {offered} | {r['connections']} | {r['seconds']:.0f} | {r['requests']} | {r['failures']} | "
          f"{r['throughput']:.0f} | {r['p50_us'] / 1000:.2f} | {r['p99_us'] / 1000:.2f} | {r['p999_us'] / 1000:.2f} | "
          + (f"{r['send_lag_p50_us'] / 1000:.2f} / {r['send_lag_p99_us'] / 1000:.2f}" if r["target_rate"] else "-") + f" | {rss} |")
    for reason in r.get("failure_reasons", []):
        print(f"  failure: {reason}")
print()
print("dynamic batching since start:", " ".join(line.split("{")[0] + " " + line.split()[-1] for line in sys.argv[4].splitlines()))
PY
