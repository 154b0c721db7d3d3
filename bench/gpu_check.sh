#!/usr/bin/env bash
# The GPU check: on a machine with an NVIDIA GPU, from a fresh checkout after `make install`:
#
#     bench/gpu_check.sh
#
# prints, within about 8 minutes: Cycles seconds per image on the GPU at 256 and 512 px (default
# preset), raster images/s through EGL on the GPU, training images/s of resnet18 and hourglass with
# AMP, and loader samples/s with as many workers as CPUs. Each part runs under its own time limit
# and prints its numbers or why it could not run; the next part runs either way. Not a test.
# PY=... picks another interpreter (default .venv/bin/python); FACEGEN_HOME as for facegen.
set -u
cd "$(dirname "$0")/.."
export PYOPENGL_PLATFORM=egl PYGLET_HEADLESS=true PYTHONUNBUFFERED=1
exec "${PY:-.venv/bin/python}" bench/gpu_check.py "$@"
