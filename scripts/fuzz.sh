#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers with libFuzzer (Fuzz/, one harness per
# parser; docs/fuzzing.md says what each checks).
#
#   scripts/fuzz.sh TARGET SECONDS    fuzz one harness for SECONDS
#   scripts/fuzz.sh all SECONDS       each harness in turn, SECONDS each
#   scripts/fuzz.sh list              the harnesses
#
# TARGET is a harness's name without "Fuzz": Configuration, SparseModelFolder,
# KServeHTTP, KServeGRPC, RESP, UpdateMessage.
#
# Builds the harnesses with -sanitize=fuzzer,address in their own build folder
# (.build-fuzz). Each run first replays the committed regression inputs
# (Fuzz/Regressions/TARGET: inputs that once failed, each now a test too),
# then fuzzes starting from the committed seed corpus (Fuzz/Corpus/TARGET),
# adding what it finds to a working corpus in .build-fuzz/corpus/TARGET (not
# committed), with the dictionary Fuzz/Dictionaries/TARGET.dict if there is
# one. A crash, a failed check, a leak-free sanitizer report or an input that
# runs over 10 s stops the run; the input is written to
# .build-fuzz/artifacts/TARGET/ and the script exits non-zero. It prints the
# executions run and the corpus size per harness last.
set -euo pipefail
cd "$(dirname "$0")/.."
targets=(Configuration SparseModelFolder KServeHTTP KServeGRPC RESP UpdateMessage)
if [ "${1:-}" = list ]; then printf '%s\n' "${targets[@]}"; exit 0; fi
if [ $# -ne 2 ]; then
    echo "usage: scripts/fuzz.sh TARGET|all SECONDS   (scripts/fuzz.sh list names the targets)" >&2
    exit 2
fi
target=$1 seconds=$2
if [ "$target" = all ]; then
    chosen=("${targets[@]}")
else
    [[ " ${targets[*]} " == *" $target "* ]] || { echo "no fuzz target $target; the targets: ${targets[*]}" >&2; exit 2; }
    chosen=("$target")
fi
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "SECONDS must be a whole number of seconds, not $seconds" >&2; exit 2; }

scratch=$PWD/.build-fuzz
echo "== building the fuzz harnesses (libFuzzer, AddressSanitizer) in .build-fuzz"
# --sanitize=fuzzer links libFuzzer, but a build from scratch left this
# package's modules (a dependency of Fuzz/) without coverage counters, so the
# fuzzer ran blind; -Xswiftc passes the flag to every Swift module.
flags=(--package-path Fuzz --scratch-path "$scratch" --sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer)
# A failed build fails the run: harnesses left from an earlier build would
# otherwise be fuzzed in its place.
build_log=$(mktemp)
if ! swift build "${flags[@]}" >"$build_log" 2>&1; then
    grep -v "Cannot export local symbol" "$build_log" | tail -60
    rm -f "$build_log"
    echo "FAILED: the fuzz harnesses did not build" >&2
    exit 1
fi
grep -v "Cannot export local symbol" "$build_log" || true
rm -f "$build_log"
bin=$(swift build "${flags[@]}" --show-bin-path)

# detect_leaks=0: the harnesses keep one model per process on purpose; leaks
# are not what is fuzzed for.
export ASAN_OPTIONS="detect_leaks=0 ${ASAN_OPTIONS:-}"
# The Swift runtime's backtracer reads memory AddressSanitizer guards and hides
# the report that matters; libFuzzer prints the stack itself.
export SWIFT_BACKTRACE=enable=no
summary=()
status=0
for t in "${chosen[@]}"; do
    harness=$bin/Fuzz$t
    [ -x "$harness" ] || { echo "the harness $harness was not built" >&2; exit 1; }
    # A harness linked from objects built without coverage instrumentation
    # fuzzes blind (seen once after an interrupted incremental build): refuse it.
    counters=$("$harness" -runs=0 2>&1 | grep -o "([0-9]* inline 8-bit counters)" | grep -o "[0-9]*" | head -1 || true)
    if [ "${counters:-0}" -lt 1000 ]; then
        echo "FAILED: $harness has ${counters:-no} coverage counters; remove .build-fuzz and run again" >&2
        exit 1
    fi
    corpus=$scratch/corpus/$t artifacts=$scratch/artifacts/$t/
    mkdir -p "$corpus" "$artifacts"
    cp -n Fuzz/Corpus/$t/* "$corpus"/ 2>/dev/null || true
    if compgen -G "Fuzz/Regressions/$t/*" >/dev/null; then
        echo "== $t: replaying Fuzz/Regressions/$t"
        "$harness" Fuzz/Regressions/$t/* >"$scratch/$t-regressions.log" 2>&1 \
            || { tail -30 "$scratch/$t-regressions.log"; echo "FAILED: a regression input of $t fails again" >&2; exit 1; }
    fi
    dict=()
    [ -f Fuzz/Dictionaries/$t.dict ] && dict=(-dict=Fuzz/Dictionaries/$t.dict)
    echo "== $t: fuzzing for ${seconds} s"
    log=$scratch/$t.log
    run=0
    "$harness" "$corpus" "${dict[@]}" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 \
        -max_len=8192 -artifact_prefix="$artifacts" -print_final_stats=1 >"$log" 2>&1 || run=$?
    executions=$(grep -o "stat::number_of_executed_units: *[0-9]*" "$log" | grep -o "[0-9]*$" || echo "?")
    files=$(find "$corpus" -type f | wc -l)
    bytes=$(du -sb "$corpus" | cut -f1)
    if [ "$run" -ne 0 ]; then
        tail -40 "$log"
        echo "FAILED: $t stopped with status $run; the input is in $artifacts" >&2
        status=1
        summary+=("$(printf '%-18s %12s %8s %10s  FAILED (see %s)' "$t" "$executions" "$files" "$bytes" "$artifacts")")
    else
        summary+=("$(printf '%-18s %12s %8s %10s  ok' "$t" "$executions" "$files" "$bytes")")
    fi
done
echo
printf '%-18s %12s %8s %10s  %s\n' target executions inputs bytes result
printf '%s\n' "${summary[@]}"
exit $status
