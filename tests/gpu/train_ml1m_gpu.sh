#!/usr/bin/env bash
# The four ML-1M reproduction rows (SASRec, Mamba4Rec, 2Mamba4Rec, Hydra4Rec) trained on one CUDA GPU with the
# fused kernels (kernel=auto picks them where mamba-ssm / causal-conv1d import) and bf16 autocast, at the
# configuration of `make reproduce-ml1m` (REPRO_SET), writing run folders like the CPU runs (issue 13, section 4).
# Sized for a lent H200 under 10 minutes: each model gets BUDGET_S/4 seconds; a model cut by its share keeps a
# checkpoint of its identity, and the same command resumes it (a finished run is reused, never retrained).
# bf16 and device=cuda enter the run identity: these are their own rows, never mixed with the CPU runs.
# Usage, from the repository root:  bash tests/gpu/train_ml1m_gpu.sh      (OUT=<dir> to write logs and runs there)
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
LOG_DIR="${OUT:-outputs/gpu_runs}"
mkdir -p "$LOG_DIR"
PY="${PYTHON:-python3}"
BUDGET_S="${BUDGET_S:-540}"
export PYTHONUNBUFFERED=1 SSMREC_PROGRESS=plain
export SSMREC_DATA_DIR="${SSMREC_DATA_DIR:-$(cd .. && pwd)/shared/data}"
[ -d "$SSMREC_DATA_DIR" ] || SSMREC_DATA_DIR="$(pwd)/shared/data"
if compgen -G ".whl/*.whl" >/dev/null; then  # optional fused-kernel wheels, as in run_gpu_checks.sh
  "$PY" -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
SET=(windows=all batch_size=16 lr=1e-3 warmup_steps=400 schedule=constant epochs=200 patience=10 n_layers=2
     bf16=true device=cuda)
share=$((BUDGET_S / 4))
{
  echo "git $(git rev-parse HEAD 2>/dev/null || echo unknown); data $SSMREC_DATA_DIR; ${share}s per model"
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || echo "nvidia-smi failed"
} | tee "$LOG_DIR/train_gpu.log"
for m in sasrec mamba4rec mamba2rec hydra4rec; do
  t0=$(date +%s)
  timeout "$share" "$PY" -m ssmrec_lib train --model "$m" --dataset ml-1m --profile full --seed 0 \
    $(printf -- '--set %s ' "${SET[@]}") --out "$LOG_DIR/runs" > "$LOG_DIR/train_$m.log" 2>&1
  rc=$?
  echo "$m: rc $rc ($([ $rc -eq 124 ] && echo 'cut by its time share; rerun to resume' || echo done)) in $(( $(date +%s) - t0 ))s; $(grep -m1 '^run ' "$LOG_DIR/train_$m.log")" | tee -a "$LOG_DIR/train_gpu.log"
done
