#!/usr/bin/env bash
# PyAV for the device machine (Python 3.12, no network there): the wheel of the version installed here,
# unpacked and packed as xz into build/gpu-av/av.tar.xz (smaller than the wheel: the device tool carries
# at most 64 MiB with the working tree). Carry build/gpu-av in the device call.
set -euo pipefail
cd "$(dirname "$0")/../.."
version=$(.venv/bin/python -c "import av; print(av.__version__)")
work=$(mktemp -d)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d "$work" "av==$version"
mkdir -p "$work/site" build/gpu-av
(cd "$work/site" && unzip -q "$work"/av-*.whl)
tar -C "$work/site" -cf - . | xz -9 -T0 > build/gpu-av/av.tar.xz
rm -rf "$work"
ls -l build/gpu-av/av.tar.xz
