#!/usr/bin/env bash
# The one prepared run for a lent GPU (H100 or H200), under 10 minutes as one command: the CuPy
# kernels' parity tests, their bandwidth, encode and decode speed, and the training kit
# (benchmarks/gpu_train.sh) for what is left; every figure goes to $OUT/gpu.json.
#
#   bash benchmarks/gpu_run.sh prepare   # here, once: gpu_train.sh prepare (clips into .gpu-data/, the
#                                        # zstandard wheel into .whl/) and pytest's wheels into .whl/pytest/
#   bash benchmarks/gpu_run.sh run       # there, through the device tool: command 'bash benchmarks/gpu_run.sh run',
#                                        # carry [".gpu-data", ".whl"], timeout_s 600
#
# Then, here: copy the returned gpu.json to benchmarks/results/gpu.json and commit it (and the weights
# and manifest.json, as README's training section says, only if they test better).
#
# Settings (environment): OUT (required), DEVICE (cuda), BUDGET (575: seconds for everything,
# inside the tool's 600), STEPS ("pytest kernels speed train"; a rerun may name fewer), MINUTES (6:
# training at most, less when the steps before leave less), TRAIN_OVERHEAD (90: seconds training
# spends beside its minutes), SPEED_SIZES ("256 720p"), SPEED_FRAMES (128), SPEED_REPEAT (3),
# SPEED_CLIP (.gpu-data/videos/sam2_01_dog.mp4, 1280x720; a synthetic pattern where missing),
# KERNEL_SIZE (720p), KERNEL_BATCH (8), CACHE (/tmp/vtok-cache), PYTHON (python3); and gpu_train.sh's
# own (MODEL, BATCH, CROP, DATA, RESUME, MASKS_AFTER, LOSS). benchmarks/gpu_run.py runs the steps and
# says what each records.
# A CPU dry run (DEVICE=cpu, tiny sizes) runs in the test suite: tests/test_gpu_kit.py.
set -euo pipefail
export GPU_RUN_START=${GPU_RUN_START:-$(date +%s)}
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

case "${1:-}" in
prepare)
    mkdir -p .whl/pytest
    # the GPU image has pytest; these are installed there only if it is missing
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        -d .whl/pytest pytest==9.2.0 pluggy==1.7.0 iniconfig==2.3.1 packaging==26.4 pygments==2.21.0
    bash benchmarks/gpu_train.sh prepare
    tracked=$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)
    upload=$((tracked + $(du -scb .gpu-data .whl | tail -1 | cut -f1)))
    echo "gpu_run: the upload holds about $((upload >> 20)) MiB of its 64 (tracked files, .gpu-data, .whl)"
    ;;
run)
    : "${OUT:?set OUT to the folder for gpu.json and the logs}"
    if ! command -v "$PY" > /dev/null; then
        echo "gpu_run: no $PY here" >&2
        exit 2
    fi
    source benchmarks/gpu_env.sh  # the carried wheels, and the checkout on PYTHONPATH
    if ! "$PY" -c "import pytest" 2> /dev/null && compgen -G ".whl/pytest/*.whl" > /dev/null; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/vtok-pytest .whl/pytest/*.whl
        export PYTHONPATH=$PYTHONPATH:/tmp/vtok-pytest
    fi
    exec "$PY" benchmarks/gpu_run.py
    ;;
*)
    echo "usage: $0 prepare|run" >&2
    exit 2
    ;;
esac
