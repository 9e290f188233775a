# Sourced by scripts/bench-serving.sh and scripts/soak-serving.sh: builds hps
# and hps-load in release, generates the seed model into a temporary folder,
# starts `hps serve` on loopback (HTTP on $port, gRPC on port+1, metrics on
# port+2, extra flags in SERVE_FLAGS) and waits until it is ready. Sets
# $dir, $server (its pid) and $load_port (the port of $transport, http or
# grpc); stops the server and removes the folder on exit. SKIP_BUILD=1 uses
# the release binaries as they are.
case "$transport" in
    http) load_port=$port ;;
    grpc) load_port=$((port + 1)) ;;
    *) echo "TRANSPORT must be http or grpc, not $transport" >&2; exit 2 ;;
esac
dir=$(mktemp -d /tmp/hps-serving-XXXXXX)
server=
cleanup() {
    if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then kill -TERM "$server"; wait "$server" || true; fi
    rm -rf "$dir"
}
trap cleanup EXIT

if [ -z "${SKIP_BUILD:-}" ]; then
    swift build -c release --product hps >/dev/null
    swift build -c release --product hps-load >/dev/null
fi
.build/release/hps generate --output "$dir/model" >/dev/null
# shellcheck disable=SC2086
.build/release/hps serve --config "$dir/model/hps.json" --http-port "$port" --grpc-port $((port + 1)) \
    --metrics-port $((port + 2)) ${SERVE_FLAGS:-} 2>"$dir/serve.log" &
server=$!
for _ in $(seq 1 600); do
    if curl -sf "http://127.0.0.1:$port/v2/health/ready" >/dev/null 2>&1; then break; fi
    sleep 0.1
done
curl -sf "http://127.0.0.1:$port/v2/health/ready" >/dev/null
