#!/usr/bin/env bash
# GPU check, round 2: every recipe through bench.throughput, the loss kernels on CUDA, the speedrun again.
# Run on the device machine from the repo root with .whl/ and data/fashion_mnist/ carried.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit
export WANDB_MODE=offline PYTHONUNBUFFERED=1 DATA_DIR=$PWD/data
nvidia-smi -L
tp() { echo "== throughput $*"; python3 -m bench.throughput trainer=gpu "$@" --steps 200 --warmup 30 2>&1 | grep -E '^\{|Error' | tail -2; }
tp data=fashion_mnist data.batch_size=512
tp data=fashion_mnist data.batch_size=2048
tp data=fashion_mnist data.batch_size=512 compile=true
tp task=distillation task.teacher_epochs=1 data.batch_size=512
tp task=vae data.batch_size=512
tp task=simclr data.batch_size=512
tp task=siamese data.batch_size=512
tp task=detection data.batch_size=128
tp task=segmentation data.batch_size=128
tp task=regression data=heteroscedastic data.batch_size=512
echo "== losses"; timeout 120 python3 -m bench.losses --device cuda 2>&1 | tail -45
echo "== speedrun"; python3 -m bench.speedrun trainer.enable_progress_bar=false --seeds 0 1 2 2>&1 | grep -A40 '^{' | tail -40
