#!/usr/bin/env bash
# Builds libhps_c.so for the GPU machine (which has no Swift toolchain) and
# packs it with the Swift runtime libraries it links, stripped, into
# .device/pylib.tar.xz (ignored by git; carried by the device tool's `carry`).
# A dynamic library cannot take the static standard library, so the runtime
# travels beside it. There:
#   mkdir -p pylib && tar xJf .device/pylib.tar.xz -C pylib
#   LD_LIBRARY_PATH=$PWD/pylib HPS_C_LIB=$PWD/pylib/libhps_c.so python3 scripts/bench-torch-gpu.py
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --scratch-path .build-static --product hps_c
staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
strip -o "$staging/libhps_c.so" .build-static/release/libhps_c.so
# The Swift runtime's libraries it needs (the toolchain's, not the system's).
ldd .build-static/release/libhps_c.so | awk '/=> \// { print $3 }' | grep -E '/swift/|libdispatch|libBlocksRuntime' | while read -r library; do
    strip -o "$staging/$(basename "$library")" "$library"
done
mkdir -p .device
tar cJf .device/pylib.tar.xz -C "$staging" .
ls -la .device/pylib.tar.xz
tar tJf .device/pylib.tar.xz
