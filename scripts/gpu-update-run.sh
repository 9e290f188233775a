#!/usr/bin/env bash
# On the GPU machine, from the repository root, with .device/hps(.xz) built by
# scripts/build-gpu-binary.sh: every GPU path against the CPU (`hps selftest`,
# with the online-update checks), the online-update rates into the GPU tables
# (`hps bench --device gpu --updates`) and PyTorch's peer
# (scripts/torch_update_peer.py). Outputs under $OUT (or ./gpu-out), tarred.
set -uo pipefail
out="${OUT:-gpu-out}"
mkdir -p "$out/raw"
if [ ! -x .device/hps ] && [ -f .device/hps.xz ]; then xz -dkf .device/hps.xz && chmod +x .device/hps; fi
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$out/raw/card.txt"
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u '+%Y-%m-%d %H:%M UTC')" > "$out/raw/when.txt"
./.device/hps selftest > "$out/raw/selftest.txt" 2>&1; selftest=$?
./.device/hps bench --device gpu --updates --markdown > "$out/raw/gpu-updates.md" 2>&1
python3 scripts/torch_update_peer.py > "$out/raw/torch-updates.md" 2>&1
tar -C "$out" -czf "$out/gpu-update-run.tgz" raw
cat "$out/raw/card.txt" "$out/raw/when.txt"
grep -iE "update|fail|✘" "$out/raw/selftest.txt" | head -40
echo "selftest exit $selftest; $(tail -1 "$out/raw/selftest.txt")"
cat "$out/raw/gpu-updates.md" "$out/raw/torch-updates.md"
