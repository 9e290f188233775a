#!/usr/bin/env bash
# The seed batch served entirely from each tier (hash map, Redis Cluster,
# RocksDB, mapped files), as in docs/performance.md: starts a
# three-master Redis Cluster on loopback ports 7400-7402, runs the release
# build's `hps bench --seed-tiers` against it, and stops the cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(mktemp -d /tmp/hps-bench-redis-XXXXXX)
trap 'scripts/redis-cluster.sh stop "$dir" 7400 >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
scripts/redis-cluster.sh start "$dir" 7400 >/dev/null
swift build -c release --enable-all-traits >/dev/null
.build/release/hps bench --skip-load --seed-tiers --redis 127.0.0.1:7400,127.0.0.1:7401,127.0.0.1:7402 \
    --markdown --runs 11 --table-keys 100000 --lookups 100000
