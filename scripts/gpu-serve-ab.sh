#!/usr/bin/env bash
# An A/B of `hps serve` on the GPU machine: scripts/gpu-serve-bench.sh run
# with a baseline binary (BASE_HPS, default .device/old/hps) and the
# current one (.device/hps), alternating, in one call, so that both are
# measured on the same machine in the same minutes. For each device of
# DEVICES (default "gpu cpu") and each round of ROUNDS (default 1): the
# baseline, then the current binary (the order flips every round). Every
# other setting goes to gpu-serve-bench.sh as it is (MAX_SECONDS, DURATION,
# CONNECTIONS, RATES, SERVE_FLAGS, …; GPU_BENCH defaults to 0 here). Each
# run's raw files are packed into $OUT/<label>.tgz (the device tool brings
# back a limited number of files); the tables come last, labelled.
#
# On the GPU machine: BASE_HPS=.device/old/hps bash scripts/gpu-serve-ab.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu-out}"
base=${BASE_HPS:-.device/old/hps}
current=${HPS:-.device/hps}
rounds=${ROUNDS:-1}
mkdir -p "$out"
for binary in "$base" "$current"; do
    if [ ! -e "$binary" ] && [ -e "$binary.xz" ]; then xz -dk "$binary.xz" && chmod +x "$binary"; fi
    [ -x "$binary" ] || { echo "$binary is missing: build it with scripts/build-gpu-binary.sh" >&2; exit 2; }
done
labels=()
for round in $(seq 1 "$rounds"); do
    for device in ${DEVICES:-gpu cpu}; do
        order="base current"
        [ $((round % 2)) = 0 ] && order="current base"
        for which in $order; do
            binary=$base
            [ "$which" = current ] && binary=$current
            label="$which-$device-r$round"
            labels+=("$label")
            echo "=== $label: $binary"
            OUT="$out/$label" HPS="$binary" DEVICES="$device" GPU_BENCH="${GPU_BENCH:-0}" \
                bash scripts/gpu-serve-bench.sh >"$out/$label.log" 2>&1 || echo "  gpu-serve-bench.sh exited $? (see $label.log)"
            grep -E '^  [a-z]' "$out/$label.log" | grep -v 'server metrics' | head -40 || true
        done
    done
done
echo
for label in "${labels[@]}"; do
    echo "### $label"
    sed -n '/^| device | transport/,$p' "$out/$label.log"
    tar czf "$out/$label.tgz" -C "$out" "$label" && rm -rf "${out:?}/$label"
done
