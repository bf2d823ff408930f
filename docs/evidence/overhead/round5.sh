#!/usr/bin/env bash
# Round 5 (issue 20: step logs straight to the loggers, one Bundle of callbacks): before and after, back to back.
# Usage: bash docs/evidence/overhead/round5.sh <export of the before commit> [pairs]
# Writes round5_{overhead,parts}_{before,after}.jsonl and round5_load.txt here (appends).
set -euo pipefail
before=$1; pairs=${2:-2}
here=$(cd "$(dirname "$0")" && pwd); after=$(cd "$here/../../.." && pwd)
py=${PYTHON:-python}
run() {  # label code-folder module args...
  local label=$1 code=$2; shift 2
  echo "$(date -u +%H:%M:%S) $label $* load: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$here/round5_load.txt"
  (cd "$code" && PYTHONPATH=$code OMP_NUM_THREADS=1 WANDB_SILENT=true "$py" -m "$@")
}
for _ in $(seq "$pairs"); do
  for side in before after; do
    code=$([ $side = before ] && echo "$before" || echo "$after")
    run overhead_$side "$code" bench.overhead --all --steps 60 --warmup 10 --repeats 3 --json "$here/round5_overhead_$side.jsonl"
  done
  for side in before after; do
    code=$([ $side = before ] && echo "$before" || echo "$after")
    run parts_$side "$code" bench.overhead_parts task=classification task=regression task=vae task=distillation --steps 200 --warmup 20 --repeats 2 --json "$here/round5_parts_$side.jsonl"
  done
done
# kl_div against torch's kl_div (issue 20, item 4), before and after, back to back
for side in before after; do
  code=$([ $side = before ] && echo "$before" || echo "$after")
  echo "$(date -u +%H:%M:%S) losses_$side load: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$here/round5_load.txt"
  (cd "$code" && PYTHONPATH=$code OMP_NUM_THREADS=1 "$py" -m bench.losses --device cpu --threads 1 --losses kl_div js_div --repeats 20 > "$here/round5_losses_$side.txt" 2>&1)
done
echo "$(date -u +%H:%M:%S) end load: $(cut -d" " -f1-3 /proc/loadavg)" >> "$here/round5_load.txt"
