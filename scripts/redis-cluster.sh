#!/usr/bin/env bash
# Starts or stops a Redis Cluster of three masters on loopback, for the tests
# of HPSRedis and for trying the redis_cluster volatile tier by hand.
#
#   scripts/redis-cluster.sh start DIR [BASEPORT]   # masters on BASEPORT..BASEPORT+2 (default 7000)
#   scripts/redis-cluster.sh stop DIR [BASEPORT]    # shuts them down and removes DIR's files
#   scripts/redis-cluster.sh node DIR PORT          # restarts one stopped node from its nodes-PORT.conf
#
# DIR holds each node's nodes-PORT.conf and log. Nothing listens beyond 127.0.0.1.
# Needs redis-server and redis-cli (Debian: apt-get install redis-server).
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR [BASEPORT] | node DIR PORT" >&2; exit 2; }
[ $# -ge 2 ] || usage
action=$1
dir=$2
base=${3:-7000}
ports=("$base" "$((base + 1))" "$((base + 2))")

for tool in redis-server redis-cli; do
    command -v "$tool" >/dev/null || { echo "$tool not found: install it (apt-get install redis-server)" >&2; exit 1; }
done

start_node() {
    local port=$1
    # A node that lost a master stays up for the slots it still holds
    # (cluster-require-full-coverage no), and failures are noticed in 2 s.
    redis-server --port "$port" --bind 127.0.0.1 --protected-mode yes \
        --cluster-enabled yes --cluster-config-file "$dir/nodes-$port.conf" \
        --cluster-node-timeout 2000 --cluster-require-full-coverage no \
        --dir "$dir" --daemonize yes --pidfile "$dir/redis-$port.pid" \
        --logfile "$dir/redis-$port.log" --save '' --appendonly no </dev/null >/dev/null 2>&1
}

wait_until() {  # wait_until SECONDS COMMAND...
    local deadline=$((SECONDS + $1)); shift
    until "$@"; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.1
    done
}

cluster_ok() {
    local port
    for port in "${ports[@]}"; do
        redis-cli -h 127.0.0.1 -p "$port" cluster info 2>/dev/null | grep -q 'cluster_state:ok' || return 1
    done
}

case $action in
start)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    for port in "${ports[@]}"; do
        start_node "$port"
    done
    for port in "${ports[@]}"; do
        wait_until 10 redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1 \
            || { echo "redis-server on port $port did not start; see $dir/redis-$port.log" >&2; exit 1; }
    done
    # A restarted node (same nodes.conf) rejoins by itself; only a fresh one needs the cluster made.
    if ! cluster_ok; then
        if redis-cli -h 127.0.0.1 -p "${ports[0]}" cluster info | grep -q 'cluster_known_nodes:1'; then
            redis-cli --cluster create "127.0.0.1:${ports[0]}" "127.0.0.1:${ports[1]}" "127.0.0.1:${ports[2]}" \
                --cluster-yes >"$dir/create.log" 2>&1 \
                || { cat "$dir/create.log" >&2; exit 1; }
        fi
    fi
    wait_until 30 cluster_ok || { echo "the cluster on ports ${ports[*]} did not reach cluster_state:ok" >&2; exit 1; }
    echo "Redis Cluster up on 127.0.0.1:${ports[0]}-${ports[2]} (files in $dir)"
    ;;
node)
    dir=$(cd "$dir" && pwd)
    start_node "$base"
    wait_until 10 redis-cli -h 127.0.0.1 -p "$base" ping >/dev/null 2>&1 \
        || { echo "redis-server on port $base did not start; see $dir/redis-$base.log" >&2; exit 1; }
    ;;
stop)
    for port in "${ports[@]}"; do
        redis-cli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null 2>&1 || true
    done
    for port in "${ports[@]}"; do
        wait_until 10 bash -c "! redis-cli -h 127.0.0.1 -p $port ping >/dev/null 2>&1" || true
    done
    if [ -d "$dir" ]; then
        rm -f "$dir"/nodes-*.conf "$dir"/redis-*.log "$dir"/redis-*.pid "$dir"/create.log
        rmdir "$dir" 2>/dev/null || true
    fi
    ;;
*)
    usage
    ;;
esac
