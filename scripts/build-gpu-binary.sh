#!/usr/bin/env bash
# Builds the `hps` binary for the GPU machine (which has no Swift toolchain):
# static Swift standard library, stripped, into .device/hps (ignored by git,
# carried to the GPU machine by the device tool's `carry`).
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --static-swift-stdlib --scratch-path .build-static
mkdir -p .device
strip -o .device/hps .build-static/release/hps
ls -la .device/hps
