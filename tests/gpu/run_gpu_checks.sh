#!/usr/bin/env bash
# One prepared check for a lent CUDA machine (finishes in under 5 minutes):
#   1. install the wheels in .whl/ (mamba-ssm, causal-conv1d, einops, ...) into /tmp/site, if the folder exists
#   2. pytest tests/gpu (fused vs reference: selective scan, conv, SSD, gated RMSNorm, Mamba, Mamba2, Hydra)
#   3. python -m ssmrec_lib bench kernels on CUDA (reference vs fused, forward and forward+backward)
# Logs go to $OUT when set (the device tool brings that folder back), else outputs/gpu_checks/: 7 files.
#   4. python -m ssmrec_lib bench latency on CUDA, one model per call (batch-1 / 256 latency, memory vs length)
#   5. the streaming benchmark on CUDA (state update vs re-encode), batch 1 and 256
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
  echo "git $(git rev-parse HEAD 2>/dev/null || echo unknown)"
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
  # mamba_ssm/__init__ imports selective_scan_cuda unconditionally (absent from a wheel built with
  # MAMBA_SKIP_CUDA_BUILD) and, through its generation utils, names from transformers; when that fails the Triton
  # SSD / RMSNorm kernels would be hidden too. A sitecustomize shim registers a bare package instead.
  if ! "$PY" -c "import mamba_ssm" >/dev/null 2>&1 && "$PY" -c "import importlib.util as u, sys; sys.exit(u.find_spec('mamba_ssm') is None)"; then
    echo "NOTE: 'import mamba_ssm' fails: $("$PY" -c "import mamba_ssm" 2>&1 | tail -1)"
    echo "      using a bare-package shim so that mamba_ssm.ops.triton.* can still import"
    mkdir -p /tmp/mamba_shim
    cat >/tmp/mamba_shim/sitecustomize.py <<'EOF'
"""Test-machine shim (written by tests/gpu/run_gpu_checks.sh): when `import mamba_ssm` fails in its package
__init__ (a wheel built without the CUDA extension lacks selective_scan_cuda; newer transformers lack the names
its generation utils import), register a bare package instead, so that its Triton kernels
(mamba_ssm.ops.triton.*) still import. Pieces that need the missing parts keep failing on import, as they should."""
import importlib.util
import sys
import types

try:
    import mamba_ssm  # noqa: F401
except Exception as e:  # ImportError, or an AttributeError from a moved transformers name
    for name in [n for n in sys.modules if n == "mamba_ssm" or n.startswith("mamba_ssm.")]:
        del sys.modules[name]
    spec = importlib.util.find_spec("mamba_ssm")
    if spec is not None and spec.submodule_search_locations:
        pkg = types.ModuleType("mamba_ssm", "bare mamba_ssm package (run_gpu_checks.sh shim)")
        pkg.__path__ = list(spec.submodule_search_locations)
        pkg.__spec__ = spec
        pkg.__shim_reason__ = f"{type(e).__name__}: {e}"
        sys.modules["mamba_ssm"] = pkg
EOF
    export PYTHONPATH="/tmp/mamba_shim:$PYTHONPATH"
  fi
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
  echo "== kernels.describe()"
  "$PY" -c "import json; from ssmrec_lib.ssm import kernels; print(json.dumps(kernels.describe(), indent=1))"
} 2>&1 | tee "$SETUP"
# the exports above ran in a pipeline subshell: repeat them here
[ -d /tmp/site ] && export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
[ -f /tmp/mamba_shim/sitecustomize.py ] && export PYTHONPATH="/tmp/mamba_shim${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

echo "== pytest tests/gpu"
timeout "${PYTEST_S:-120}" "$PY" -m pytest tests/gpu -q -rs -p no:cacheprovider 2>&1 | tee "$LOG_DIR/pytest_gpu.log"
rc_test=${PIPESTATUS[0]}

echo "== bench kernels (cuda)"
timeout "${BENCH_S:-80}" "$PY" -m ssmrec_lib bench kernels --device cuda --repeats 10 --budget-s 20 --mem-budget-gb 40 \
  --out "$LOG_DIR/bench_kernels_cuda.csv" 2>&1 | tee "$LOG_DIR/bench_kernels_cuda.log"
rc_bench=${PIPESTATUS[0]}

echo "== bench latency (models, cuda): one model per call, so a slow one cannot take the others' rows"
rc_lat=0
for m in ${LATENCY_MODELS:-mamba4rec mamba2rec sasrec hydra4rec lrurec gru4rec}; do
  timeout "${LATENCY_S:-30}" "$PY" -m ssmrec_lib bench latency --device cuda --models "$m" --lengths 50,200,1000,4000 \
    --batch 1,256 --repeats 10 --out "$LOG_DIR/bench_latency_cuda_$m.csv" 2>&1 | tee -a "$LOG_DIR/bench_latency_cuda.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || rc_lat=1
done

echo "== bench streaming (cuda, batch 1 and 256)"
for b in 1 256; do
  timeout "${STREAM_S:-30}" "$PY" -m ssmrec_lib bench streaming --device cuda --batch "$b" --repeats 10 \
    --models mamba4rec mamba2rec sasrec --out "$LOG_DIR/bench_streaming_cuda_b$b.csv" 2>&1 \
    | tee -a "$LOG_DIR/bench_streaming_cuda.log" || true
done

echo "== done: pytest rc=$rc_test, bench rc=$rc_bench, latency rc=$rc_lat, $(($(date +%s) - start)) s" | tee -a "$SETUP"
[ "$rc_test" -eq 0 ] && [ "$rc_bench" -eq 0 ] && [ "$rc_lat" -eq 0 ]
