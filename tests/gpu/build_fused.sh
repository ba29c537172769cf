#!/usr/bin/env bash
# Build wheels of the optional fused kernels (causal-conv1d, mamba-ssm) on a CUDA machine that has no network,
# from source distributions placed in .whl/ beforehand (here: `pip download --no-deps --no-binary :all:
# --no-build-isolation mamba-ssm==2.3.2.post1 causal-conv1d==1.7.0 -d .whl` with the four *_SKIP_CUDA_BUILD /
# *_FORCE_BUILD flags set, see requirements-gpu.txt). Only for the GPU checks: users install requirements-gpu.txt.
#
# To fit a short lease it compiles for the local GPU's architecture only (sm_90 on H100/H200) and time-boxes the
# slow selective-scan build; if that runs out, it builds mamba-ssm without its CUDA extension (the Triton SSD and
# gated-RMSNorm kernels still work; run_gpu_checks.sh stubs the missing module and says so).
# Usage, from the repository root:  bash tests/gpu/build_fused.sh [seconds for the mamba-ssm CUDA build]
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
REPO=$PWD
PY="${PYTHON:-python3}"
BUDGET="${1:-330}"
ARCH=$("$PY" -c "import torch; p = torch.cuda.get_device_capability(); print(f'{p[0]}{p[1]}')")
export MAX_JOBS="${MAX_JOBS:-$(nproc)}" NVCC_THREADS=2
mkdir -p /tmp/fused_build && cd /tmp/fused_build || exit 1

only_local_arch() {  # drop every `-gencode arch=compute_XX` pair but the local one from a setup.py
  "$PY" - "$1" "$ARCH" <<'PYEOF'
import re, sys
path, arch = sys.argv[1], sys.argv[2]
src = open(path).read()
pat = re.compile(r'^(\s*)cc_flag\.append\("-gencode"\)\n\s*cc_flag\.append\("arch=compute_(\d+),code=sm_\d+"\)', re.M)
src, n = pat.subn(lambda m: m.group(0) if m.group(2) == arch else m.group(1) + "pass", src)
open(path, "w").write(src)
print(f"{path}: kept sm_{arch} only ({n} gencode pairs seen)")
PYEOF
}

build() {  # build <sdist> <timeout> [ENV=VALUE ...]
  local sdist=$1 limit=$2; shift 2
  local dir; dir=$(basename "$sdist" .tar.gz)
  rm -rf "$dir" && tar xzf "$sdist" && only_local_arch "$dir/setup.py"
  local t0; t0=$(date +%s)
  ( cd "$dir" && env "$@" timeout "$limit" "$PY" -m pip wheel -q --no-build-isolation --no-deps --no-index \
      -w "$REPO/.whl" . ) && echo "built $dir in $(($(date +%s) - t0)) s" && return 0
  echo "BUILD FAILED or timed out: $dir ($*) after $(($(date +%s) - t0)) s"; return 1
}

# One after the other, each with every core. Seen on an H200 (16 cores, nvcc 13.0): mamba-ssm's CUDA build took
# 148 s while causal-conv1d built beside it; causal-conv1d 1.7.0 did not finish in 240 s sharing the cores.
build "$REPO"/.whl/mamba_ssm-*.tar.gz "$BUDGET" MAMBA_FORCE_BUILD=TRUE \
  || build "$REPO"/.whl/mamba_ssm-*.tar.gz 120 MAMBA_FORCE_BUILD=TRUE MAMBA_SKIP_CUDA_BUILD=TRUE
build "$REPO"/.whl/causal_conv1d-*.tar.gz "${CONV_BUDGET:-300}" CAUSAL_CONV1D_FORCE_BUILD=TRUE
ls -la "$REPO/.whl"
