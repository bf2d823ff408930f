#!/usr/bin/env bash
# GPU check, round 3 (issues 20 and 16): every recipe through the train.py Trainer at batch 512 and 2048
# (framework/plain ratio), classification compile=true vs eager (recompiles from bench.overhead), the speedrun's
# fit time with start-up apart, FCOS-resnet50 and ResNet-18 one epoch (samples/s, peak memory), bench.losses on CUDA.
# On the device machine, from the repo root, with .whl/ (bash ../shared/tools/offline-wheels.sh) and
# data/fashion_mnist/ (the four IDX .gz files of Debian's dataset-fashion-mnist) carried; about 9 minutes:
#   bash bench/gpu_round3.sh
# Here, every step at toy size on the CPU (proves each command line parses and runs; about 2 minutes):
#   DRY=1 bash bench/gpu_round3.sh
# Writes into $OUT (a temporary folder when unset): round3.log (everything), results.jsonl (one line per
# measurement), summary.md. A global budget (BUDGET seconds, default 560) skips the steps that no longer fit.
set -uo pipefail
DRY=${DRY:-0}
PY=${PYTHON:-python3}
OUT=${OUT:-$(mktemp -d)}
BUDGET=${BUDGET:-560}
mkdir -p "$OUT"
scratch=$(mktemp -d)
export WANDB_MODE=offline WANDB_SILENT=true PYTHONUNBUFFERED=1 DATA_DIR=$PWD/data HYDRA_FULL_ERROR=1
if [ "$DRY" = 1 ]; then
  export OMP_NUM_THREADS=1 CUDA_VISIBLE_DEVICES=""
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
  dev=(trainer=cpu)
  tp_len=(--steps 2 --warmup 1)
  batches=(16)
  limits=(trainer.limit_train_batches=2 trainer.limit_val_batches=1 trainer.limit_test_batches=1)
else
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl &&
    export PYTHONPATH=/tmp/site:$PWD || exit
  dev=(trainer=gpu)
  tp_len=(--steps 100 --warmup 20)
  batches=(512 2048)
  limits=()
fi
exec > >(tee -a "$OUT/round3.log") 2>&1
echo "round 3, $(date -u '+%Y-%m-%d %H:%M:%S UTC'), DRY=$DRY, commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null || echo "nvidia-smi: none"
$PY -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__, 'cuda', torch.cuda.is_available())"

# step NAME SECONDS COMMAND...: run under timeout (cut to what is left of BUDGET), keep the output's tail in the
# log and every JSON object it prints (one per line, or one indented) in results.jsonl with rc and wall seconds.
step() {
  local name=$1 limit=$2
  shift 2
  local left=$((BUDGET - SECONDS))
  if [ "$left" -lt 20 ]; then
    echo "== $name: SKIPPED (budget spent)"
    echo "{\"step\": \"$name\", \"skipped\": true}" >>"$OUT/results.jsonl"
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "== $name ($(date -u +%T), timeout ${limit}s): $*"
  local start=$EPOCHREALTIME
  timeout -k 10 "$limit" "$@" >"$scratch/out" 2>&1
  local rc=$?
  local wall
  wall=$(awk "BEGIN {printf \"%.1f\", $EPOCHREALTIME - $start}")
  grep -vE "it/s]|^\s*$|Tip:|UserWarning|warnings.warn|^\s*(\||┃|┡|└|│)" "$scratch/out" | tail -n "${TAIL:-4}" | cut -c1-400
  echo "rc $rc, wall ${wall}s"
  $PY - "$scratch/out" "$name" "$rc" "$wall" >>"$OUT/results.jsonl" <<'PYTHON'
import json, re, sys
text, name, rc, wall = open(sys.argv[1]).read(), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
found, decoder, end = [], json.JSONDecoder(), 0
for match in re.finditer(r"^\{", text, re.M):  # each JSON object the step printed, one line or indented
    if match.start() >= end:
        try:
            obj, end = decoder.raw_decode(text, match.start())
            found.append(obj)
        except json.JSONDecodeError:
            pass
for obj in found or [None]:
    print(json.dumps({"step": name, "rc": rc, "wall_s": wall, "result": obj}))
PYTHON
}

step import-time 60 $PY -c "import train, bench.throughput"

# Every recipe through the Trainer train.py builds, against a plain loop in the same process. Fields: name,
# overrides, overrides on the GPU only, at batch 2048 only (GPU), at toy size only (DRY=1).
recipes=(
  "classification||data=fashion_mnist||model.widths=[4,8]"
  "distillation|task=distillation task.teacher_epochs=1|data=fashion_mnist||model.hidden=[16] task.teacher_model.widths=[4,8] trainer.limit_train_batches=2"
  "vae|task=vae|data=fashion_mnist||model.hidden=[16] model.latent_dim=2"
  "simclr|task=simclr|data=fashion_mnist||model.widths=[4,8]"
  "siamese|task=siamese|||model.widths=[4,8] model.num_outputs=8"
  "detection|task=detection||data.train_size=16384|data.size=64 data.max_scale=1.0 data.train_size=64 data.val_size=16 data.test_size=16 model.widths=[4,8,16] model.head_width=8 model.head_depth=1"
  "segmentation|task=segmentation||data.train_size=16384|data.size=64 data.max_scale=1.0 data.train_size=64 data.val_size=16 data.test_size=16 model.widths=[4,8]"
  "regression|task=regression data=heteroscedastic|data.num_rows=200000||model.hidden=[16]"
)
for bs in "${batches[@]}"; do
  for entry in "${recipes[@]}"; do
    IFS='|' read -r name common gpu big toy <<<"$entry"
    if [ "$DRY" = 1 ]; then extra=$toy; else extra="$gpu $([ "$bs" = 2048 ] && echo "$big")"; fi
    # shellcheck disable=SC2086
    step "throughput-$name-$bs" "$([[ $name == detection || $name == segmentation ]] && echo 80 || echo 50)" $PY -m bench.throughput "${dev[@]}" $common $extra data.batch_size=$bs "${tp_len[@]}"
  done
done

# Classification compile=true vs eager: samples/s at both batch sizes (eager: the rows above), then
# bench.overhead (an MLP, pre-made batches) for ms per step against bare Lightning and the graphs compiled after warm-up.
if [ "$DRY" = 1 ]; then cls=(model.widths=[4,8]); ov=(--steps 3 --warmup 1 --repeats 1); else cls=(data=fashion_mnist); ov=(--steps 60 --warmup 20 --repeats 3); fi
for bs in "${batches[@]}"; do
  step "throughput-classification-$bs-compile" 80 $PY -m bench.throughput "${dev[@]}" "${cls[@]}" data.batch_size=$bs compile=true "${tp_len[@]}"
done
ovsize=(model.hidden=[1024,1024] data.batch_size=512)
[ "$DRY" = 1 ] && ovsize=()
step overhead-classification-eager 60 $PY -m bench.overhead task=classification "${dev[@]}" "${ovsize[@]}" "${ov[@]}"
step overhead-classification-compile 90 $PY -m bench.overhead task=classification "${dev[@]}" "${ovsize[@]}" compile=true "${ov[@]}"

# The speedrun: fit seconds per seed from timing.json; the step's wall time minus their sum is start-up
# (imports, config, data, cuDNN autotune outside fit) plus the test passes. import-time above is the imports alone.
if [ "$DRY" = 1 ]; then
  step speedrun 90 $PY -m bench.speedrun "${dev[@]}" "${limits[@]}" model.widths=[4,8,16] trainer.max_epochs=1 --seeds 0
else
  step speedrun 90 $PY -m bench.speedrun trainer.enable_progress_bar=false --seeds 0 1 2
fi

# Issue 16: one epoch of FCOS-resnet50 on the canvases and of ResNet-18 on Fashion-MNIST (samples/s, peak memory),
# and ResNet-18's training step alone against the plain loop.
fcos=(task=detection model=fcos model.backbone=resnet50_fpn data.batch_size=64)
r18=(model=torchvision model.name=resnet18 data=fashion_mnist data.batch_size=512)
if [ "$DRY" = 1 ]; then
  fcos=(task=detection model=fcos model.backbone=resnet18_fpn data.size=64 data.max_scale=1.0 data.train_size=8 data.val_size=4 data.test_size=4 data.batch_size=4 data.eval_batch_size=4)
  r18=(model=torchvision model.name=resnet18 data=fashion_mnist data.batch_size=8 data.eval_batch_size=8)
fi
step fcos-resnet50-one-epoch 120 $PY -m bench.one_epoch "${dev[@]}" "${limits[@]}" "${fcos[@]}" trainer.enable_progress_bar=false
step resnet18-fashion-one-epoch 90 $PY -m bench.one_epoch "${dev[@]}" "${limits[@]}" "${r18[@]}" trainer.enable_progress_bar=false
step throughput-resnet18-fashion 60 $PY -m bench.throughput "${dev[@]}" "${r18[@]}" "${tp_len[@]}"

# The loss kernels, forward + backward, against their torch references.
if [ "$DRY" = 1 ]; then
  TAIL=3 step losses 60 $PY -m bench.losses --device cpu --toy --repeats 1 --warmup 0
else
  TAIL=45 step losses 120 $PY -m bench.losses --device cuda
fi

# summary.md: one row per measurement (ratio and peak memory where the step gives them).
$PY - "$OUT/results.jsonl" >"$OUT/summary.md" <<'PYTHON'
import json, sys
print("| step | rc | wall s | result |\n|---|---|---|---|")
for line in open(sys.argv[1]):
    row = json.loads(line)
    r = row.get("result") or {}
    keys = ("ratio", "framework_samples_per_s", "plain_samples_per_s", "framework_peak_mib", "train_samples_per_s",
            "peak_mib", "fit_seconds", "fit_seconds_mean", "test_acc_mean", "framework_ms", "bare_ms", "plain_ms",
            "recompiles_after_warmup")
    shown = ", ".join(f"{k} {r[k]}" for k in keys if isinstance(r, dict) and k in r)
    print(f"| {row['step']} | {row.get('rc', 'skipped')} | {row.get('wall_s', '-')} | {shown} |")
PYTHON
cat "$OUT/summary.md"
failed=$(grep -c '"rc": [1-9]' "$OUT/results.jsonl")
echo "done $(date -u +%T), ${SECONDS}s, $failed step(s) failed, results in $OUT"
rm -rf "$scratch"
[ "$failed" = 0 ]
