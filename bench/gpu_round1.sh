#!/usr/bin/env bash
# GPU check, round 1: classification on the device (sanity run, throughput framework vs plain, speedrun).
# Run on the device machine from the repo root with .whl/ and data/fashion_mnist/ carried.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit
export WANDB_MODE=offline PYTHONUNBUFFERED=1 DATA_DIR=$PWD/data
nvidia-smi -L; python3 -c "import torch, lightning; print(torch.__version__, lightning.__version__, torch.cuda.get_device_name())"
t() { echo "== $*"; local s=$SECONDS; "$@" 2>&1 | grep -vE "it/s|^\s*$|Tip|UserWarning|warnings.warn" | tail -${TAIL:-6}; echo "elapsed $((SECONDS - s)) s"; }
TAIL=14 t python3 train.py trainer=gpu logger=csv trainer.max_epochs=12 trainer.enable_progress_bar=false
for bs in 512 2048; do
  t python3 -m bench.throughput trainer=gpu data.batch_size=$bs --steps 300 --warmup 50
done
t python3 -m bench.throughput trainer=gpu data.batch_size=512 data.on_device=false --steps 300 --warmup 50
t python3 -m bench.throughput trainer=gpu data.batch_size=512 compile=true --steps 300 --warmup 50
TAIL=30 t python3 -m bench.speedrun trainer.enable_progress_bar=false --seeds 0 1 2
