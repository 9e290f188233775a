#!/usr/bin/env bash
# Builds `hps` and `hps-load` for the GPU machine (which has no Swift
# toolchain): static Swift standard library, with serving (the default
# traits), stripped, then compressed with xz into .device/ (ignored by git,
# carried to the GPU machine by the device tool's `carry`; what travels is at
# most 64 MiB). Unpack there with `xz -dk .device/*.xz && chmod +x .device/hps .device/hps-load`.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --static-swift-stdlib --scratch-path .build-static --product hps
swift build -c release --static-swift-stdlib --scratch-path .build-static --product hps-load
mkdir -p .device
for binary in hps hps-load; do
    strip -o ".device/$binary" ".build-static/release/$binary"
    xz -9 -T2 -f -k ".device/$binary"
done
ls -la .device
