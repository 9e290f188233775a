#!/usr/bin/env bash
# Builds the `hps` binary for the GPU machine (which has no Swift toolchain):
# static Swift standard library, stripped, into .device/hps (ignored by git,
# carried to the GPU machine by the device tool's `carry`). Built without the
# default traits: `hps serve` (Hummingbird) would bring Foundation's
# internationalization and more than the 64 MiB that can travel.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --static-swift-stdlib --disable-default-traits --scratch-path .build-static --product hps
mkdir -p .device
strip -o .device/hps .build-static/release/hps
ls -la .device/hps
