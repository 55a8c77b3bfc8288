#!/usr/bin/env bash
# One prepared training run for a lent GPU (H100 or H200), about 10 minutes in all: it continues
# training the shipped model on the training clips and writes the weights and its log to $OUT.
#
#   bash benchmarks/gpu_train.sh prepare   # here, once: copies the training clips into .gpu-data/ and
#                                          # the zstandard wheel into .whl/ (both git-ignored, ~45 MiB)
#   bash benchmarks/gpu_train.sh run       # there, through the device tool, with carry [".gpu-data", ".whl"]
#
# Settings (environment): MODEL (vtok-fsq), MINUTES (6), BATCH (256), CROP (128), DEVICE (cuda),
# DATA (.gpu-data), RESUME (vtok/weights/MODEL.safetensors), MASKS_AFTER (0.5), LOSS (mse; the README's
# resume command uses log-mse), CACHE (/tmp/vtok-cache), OUT (required).
# A CPU dry run (DEVICE=cpu with tiny sizes) runs in the test suite: tests/test_gpu_kit.py.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-vtok-fsq}
MINUTES=${MINUTES:-6}
BATCH=${BATCH:-256}
CROP=${CROP:-128}
DEVICE=${DEVICE:-cuda}
DATA=${DATA:-.gpu-data}
RESUME=${RESUME:-vtok/weights/$MODEL.safetensors}
MASKS_AFTER=${MASKS_AFTER:-0.5}
LOSS=${LOSS:-mse}
CACHE=${CACHE:-/tmp/vtok-cache}
PY=${PYTHON:-python3}

case "${1:-}" in
prepare)
    mkdir -p .gpu-data .whl
    exclude=$(git rev-parse --git-path info/exclude)  # .git is a file in a worktree
    grep -qx '/.gpu-data/' "$exclude" 2>/dev/null || echo '/.gpu-data/' >> "$exclude"
    grep -qx '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >> "$exclude"
    rm -rf .gpu-data/videos .gpu-data/images
    cp -r ../shared/data/videos/train .gpu-data/videos
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl zstandard==0.25.0
    # the upload holds 64 MiB with the tracked files: the stills go too only if they fit
    tracked=$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)
    used=$((tracked + $(du -scb .gpu-data .whl | tail -1 | cut -f1)))
    images=$(du -sb ../shared/data/images/train | cut -f1)
    if [ $((used + images)) -lt $((63 << 20)) ]; then
        cp -r ../shared/data/images/train .gpu-data/images
    else
        echo "gpu_train: leaving the still images behind: the upload would pass 64 MiB" >&2
    fi
    du -sh .gpu-data .whl
    ;;
run)
    : "${OUT:?set OUT to the folder for the weights and log}"
    source benchmarks/gpu_env.sh  # the carried wheels, and the checkout on PYTHONPATH
    # prerequisites first, so that no device time goes to a run that cannot finish
    "$PY" - "$DEVICE" "$DATA" "$RESUME" "$MODEL" "$BATCH" "$CROP" "$MINUTES" "$MASKS_AFTER" "$LOSS" <<'PYCHECK'
import importlib.util, sys
from pathlib import Path
device, data, resume, model, batch, crop, minutes, masks_after, loss = sys.argv[1:]
missing = [m for m in ("torch", "numpy", "safetensors", "typer", "rich", "zstandard") if importlib.util.find_spec(m) is None]
if importlib.util.find_spec("av") is None and importlib.util.find_spec("cv2") is None:
    missing.append("av or cv2 (to decode the clips)")
if missing:
    sys.exit("gpu_train: missing " + ", ".join(missing))
if not Path(data).is_dir():
    sys.exit(f"gpu_train: no training data in {data} (run 'prepare' here first, and carry it)")
if not Path(resume).is_file():
    sys.exit(f"gpu_train: no weights to resume at {resume}")
import torch
from vtok.errors import VtokError
from vtok.train import TrainConfig
try:
    config = TrainConfig(
        model=model, batch=int(batch), crop=int(crop), minutes=float(minutes), masks_after=float(masks_after), loss=loss,
        device=device,
    )
    config.check()
except ValueError as e:  # a UsageError names its setting, which is set here by that name upper-cased
    where = f"{e.option.upper()}: " if getattr(e, "option", None) else ""
    sys.exit(f"gpu_train: {where}{e}")
if device.startswith("cuda") and not torch.cuda.is_available():
    sys.exit("gpu_train: CUDA is not available")
from safetensors.torch import load_file
from vtok.model.tokenizer import Tokenizer
from vtok.train.checkpoint import adapt
try:  # the same test training makes, before the device time is spent
    adapt(load_file(resume), Tokenizer(config.architecture), log=lambda _: None)
except VtokError:
    sys.exit(f"gpu_train: {resume} is not a {model} model")
name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
print(f"gpu_train: torch {torch.__version__} on {name}", flush=True)
PYCHECK
    mkdir -p "$OUT"
    PYTHONUNBUFFERED=1 "$PY" -m vtok train "$DATA" --model "$MODEL" --resume "$RESUME" --device "$DEVICE" \
        --batch "$BATCH" --crop "$CROP" --minutes "$MINUTES" --masks-after "$MASKS_AFTER" --loss "$LOSS" \
        --cache "$CACHE" -o "$OUT" 2>&1 | tee "$OUT/train.log"
    rm -f "$OUT/$MODEL.checkpoint.safetensors"  # optimizer moments: too large to bring back, not shipped
    ;;
*)
    echo "usage: $0 prepare|run" >&2
    exit 2
    ;;
esac
