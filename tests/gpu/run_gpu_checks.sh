#!/usr/bin/env bash
# One prepared check for a lent CUDA machine (finishes in under 5 minutes):
#   1. install the wheels in .whl/ (mamba-ssm, causal-conv1d, einops, ...) into /tmp/site, if the folder exists
#   2. pytest tests/gpu (fused vs reference: selective scan, conv, SSD, gated RMSNorm, Mamba, Mamba2, Hydra)
#   3. python -m ssmrec_lib bench kernels on CUDA (reference vs fused, forward and forward+backward)
# Logs go to $OUT when set (the device tool brings that folder back), else outputs/gpu_checks/: 4 files.
# Usage, from the repository root:  bash tests/gpu/run_gpu_checks.sh
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
LOG_DIR="${OUT:-outputs/gpu_checks}"
mkdir -p "$LOG_DIR"
export PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"
start=$(date +%s)
SETUP="$LOG_DIR/setup.log"

{
  echo "== machine"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "nvidia-smi failed"
  "$PY" -c "import sys, torch; print('python', sys.version.split()[0], '| torch', torch.__version__, '| cuda', torch.version.cuda, torch.cuda.is_available())"
  "$PY" -c "import triton; print('triton', triton.__version__)" || echo "triton missing"

  echo "== wheels"
  if compgen -G ".whl/*.whl" >/dev/null; then
    ls .whl
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
      || echo "WHEEL INSTALL FAILED"
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
  else
    echo "no .whl/ folder: fused kernels will be unavailable and their tests skipped"
  fi
  # mamba_ssm/__init__ imports selective_scan_cuda unconditionally; a wheel built with MAMBA_SKIP_CUDA_BUILD lacks
  # it, which would also hide the (working) Triton SSD and RMSNorm kernels. Stub it so those import; the fused
  # selective scan then raises when called (bench rows say so; its tests fail loudly rather than pass).
  if "$PY" -c "import mamba_ssm" 2>&1 | grep -q "selective_scan_cuda"; then
    mkdir -p /tmp/stub
    cat >/tmp/stub/selective_scan_cuda.py <<'EOF'
"""Stub: this mamba-ssm wheel was built without its CUDA extension (MAMBA_SKIP_CUDA_BUILD)."""


def __getattr__(name):
    raise RuntimeError(f"selective_scan_cuda.{name}: stub, mamba-ssm was built without its CUDA extension")
EOF
    export PYTHONPATH="/tmp/stub:$PYTHONPATH"
    echo "NOTE: selective_scan_cuda missing from the wheel -> stubbed (fused selective scan unusable here)"
  fi
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
  echo "== kernels.describe()"
  "$PY" -c "import json; from ssmrec_lib.ssm import kernels; print(json.dumps(kernels.describe(), indent=1))"
} 2>&1 | tee "$SETUP"
# the exports above ran in a pipeline subshell: repeat them here
[ -d /tmp/site ] && export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
[ -f /tmp/stub/selective_scan_cuda.py ] && export PYTHONPATH="/tmp/stub:$PYTHONPATH"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

echo "== pytest tests/gpu"
timeout 140 "$PY" -m pytest tests/gpu -q -rs -p no:cacheprovider 2>&1 | tee "$LOG_DIR/pytest_gpu.log"
rc_test=${PIPESTATUS[0]}

echo "== bench kernels (cuda)"
timeout 100 "$PY" -m ssmrec_lib bench kernels --device cuda --repeats 10 --budget-s 20 --mem-budget-gb 40 \
  --out "$LOG_DIR/bench_kernels_cuda.csv" 2>&1 | tee "$LOG_DIR/bench_kernels_cuda.log"
rc_bench=${PIPESTATUS[0]}

echo "== done: pytest rc=$rc_test, bench rc=$rc_bench, $(($(date +%s) - start)) s" | tee -a "$SETUP"
[ "$rc_test" -eq 0 ] && [ "$rc_bench" -eq 0 ]
