#!/usr/bin/env bash
# The abuse tests' figures: p50 / p99 of well-formed requests without and
# during each attack, and the server's RSS (Tests/python/test_abuse.py run as
# a script), with the server and the Python side (attackers and the measuring
# client) pinned to separate cores, so that the attackers' own CPU does not
# show as the server's latency.
#
#   bash scripts/abuse-figures.sh HPS_BINARY [SERVER_CPUS CLIENT_CPUS]
#
# e.g. `bash scripts/abuse-figures.sh .build/release/hps 0-7 8-15` on the
# 16-core GPU machine. Needs numpy and tritonclient[http].
set -euo pipefail
cd "$(dirname "$0")/.."
binary=$(realpath "$1")
server_cpus=${2:-}
client_cpus=${3:-}
wrapper=$(mktemp /tmp/hps-pinned.XXXXXX)
trap 'rm -f "$wrapper"' EXIT
if [ -n "$server_cpus" ]; then
    printf '#!/bin/sh\nexec taskset -c %s %s "$@"\n' "$server_cpus" "$binary" > "$wrapper"
else
    printf '#!/bin/sh\nexec %s "$@"\n' "$binary" > "$wrapper"
fi
chmod +x "$wrapper"
if [ -n "$client_cpus" ]; then
    HPS_BIN=$wrapper taskset -c "$client_cpus" python3 Tests/python/test_abuse.py
else
    HPS_BIN=$wrapper python3 Tests/python/test_abuse.py
fi
