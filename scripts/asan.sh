#!/usr/bin/env bash
# The whole Swift test suite under AddressSanitizer, every trait on, in its own
# build folder (.build-asan) so that it leaves the ordinary build alone.
# Needs what .ci/run installs (redis-server, librocksdb-dev, librdkafka-dev).
# Writes the log to ${ASAN_LOG:-/tmp/hps-asan.log}; exits non-zero if a test
# fails or AddressSanitizer reports an error. The last run's result is recorded
# in docs/checks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
log=${ASAN_LOG:-/tmp/hps-asan.log}
# detect_leaks=0: LeakSanitizer reports the runtime's and the C libraries'
# process-lifetime allocations (Foundation's caches, librdkafka's globals),
# not leaks of ours; the memory tests in the suite watch growth instead.
# halt_on_error=1 (the default): the first report ends the run with its stack.
export ASAN_OPTIONS="detect_leaks=0 ${ASAN_OPTIONS:-}"
status=0
swift test --enable-all-traits --sanitize=address --scratch-path .build-asan "$@" 2>&1 | tee "$log" || status=$?
reports=$(grep -c "ERROR: AddressSanitizer" "$log" || true)
echo "AddressSanitizer: $reports report(s); swift test exited with $status"
if [ "$reports" -gt 0 ] || [ "$status" -ne 0 ]; then exit 1; fi
