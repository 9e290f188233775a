#!/usr/bin/env bash
# Each tier's lookup rate (current figures in docs/performance.md), in one run:
# starts a three-master Redis Cluster on loopback ports 7300-7302, builds the
# release binary with every trait, runs `hps bench --tier-rates` (the Redis
# tier against redis-benchmark's pipelined HMGET on the same cluster; 1M
# random lookups from 4M keys of vec size 128 from RocksDB cold and warm and
# from the mapped tier, against the hash map), prints the machine's load
# before and after, and stops the cluster. Extra arguments go to `hps bench`
# (e.g. --redis-connections 8, --skip-persistent).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v redis-benchmark >/dev/null || { echo "redis-benchmark not found: install it (apt-get install redis-tools)" >&2; exit 1; }
dir=$(mktemp -d /tmp/hps-bench-tiers-XXXXXX)
trap 'scripts/redis-cluster.sh stop "$dir" 7300 >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
swift build -c release --enable-all-traits >/dev/null
scripts/redis-cluster.sh start "$dir" 7300 >/dev/null
echo "before: $(uptime)"
echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- Sources Package.swift || echo ' (with uncommitted changes)')"
.build/release/hps bench --tier-rates --redis 127.0.0.1:7300,127.0.0.1:7301,127.0.0.1:7302 \
    --markdown --runs 11 "$@"
echo "after: $(uptime)"
