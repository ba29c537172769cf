"""The C++ CPU kernels of `ssm/csrc`: JIT build, load, and the autograd wrapper of the selective scan.

This module only builds and wraps; it never decides. `ssm/kernels.py` is the dispatcher (kernel="cpu" / "auto")
and the only module that calls `module()` / `selective_scan_cpu` on behalf of the rest of the package.

Glossary: as in `ssm/scan.py` (u, delta, A, B, C, D, z, delta_bias; dt = softplus(delta + delta_bias);
Ab = exp(dt A) ZOH for A, Bb = dt B Euler for B, as Mamba does).

Extensions, one per op that has a C++ kernel (`EXTENSIONS`):
    selective_scan   csrc/selective_scan_cpu.cpp   forward + backward of the Mamba1 scan (`selective_scan_cpu`)
    stream_step      csrc/stream_step_cpu.cpp      one streaming event of a whole Mamba / Mamba2 recommender
                                                   (packed and called by `ssm/fused_step.py`)
    ssd              csrc/ssd_cpu.cpp              forward + backward of the Mamba2 SSD recurrence (`ssd_cpu`):
                                                   one exp per (row, head, step), B / C read once per group

- Built with `torch.utils.cpp_extension.load` (needs a C++ compiler and `ninja`), `-O3 -march=native -ffast-math`,
  parallel with ATen's OpenMP thread pool (`torch.set_num_threads` applies).
- Build folder: `$SSMREC_CACHE_DIR/torch_extensions/<name>` or `~/.cache/ssmrec/torch_extensions/<name>`;
  the name carries a hash of the source, the shared headers, the flags, the torch version and the CPU model, so
  a new source (or a different machine sharing the cache) rebuilds instead of loading a stale or illegal binary.
- The build never happens at import: the first `module(op)` call builds (~25 s once per extension on the 2-core
  dev machine), later processes load the cached library in ~0.2 s. A failed build is remembered, never raised:
  `module(op)` returns None and `unavailable_reason(op)` says why. `SSMREC_DISABLE_CPU_EXT=1` makes every
  extension unavailable without building it.
- Scan backward: the forward saves only its inputs; the backward RECOMPUTES each channel's states into a
  thread-local (L+1) x N buffer (no (B, D, L, N) tensor is ever stored), then runs the adjoint recurrence.
- Scan dtypes: float32 and float64 run natively; other dtypes (bf16, fp16) are computed in float32 and cast back.
- SSD backward: likewise recomputes the (l + 1) x p x n states of one (row, head) into a thread-local buffer.
- Timings against the reference: `python -m ssmrec_lib bench kernels` (rows "ref" vs "fast"; docs/cpu_ssd.md).
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import time
from pathlib import Path

import torch

log = logging.getLogger(__name__)

__all__ = ["EXTENSIONS", "available", "build_info", "disabled", "module", "scan_unsupported", "selective_scan_cpu",
           "ssd_cpu", "ssd_unsupported", "unavailable_reason"]

CSRC = Path(__file__).resolve().parent / "csrc"
EXTENSIONS = {  # op -> (source, build-name prefix, what the log calls it)
    "selective_scan": (CSRC / "selective_scan_cpu.cpp", "ssmrec_scan_cpu", "CPU scan extension"),
    "stream_step": (CSRC / "stream_step_cpu.cpp", "ssmrec_stream_step", "fused streaming step"),
    "ssd": (CSRC / "ssd_cpu.cpp", "ssmrec_ssd_cpu", "CPU SSD extension"),
}
SOURCE = EXTENSIONS["selective_scan"][0]
CFLAGS = ["-O3", "-march=native", "-ffast-math", "-fopenmp"]  # -ffast-math: lets gcc vectorise exp (libmvec)
LDFLAGS = ["-fopenmp"]  # no -ffast-math at link time: crtfastmath.o would flush denormals process-wide
_EXPECTED_BUILD_S = 30

_states: dict[str, dict] = {op: {"module": None, "error": None, "tried": False, "build_s": None} for op in EXTENSIONS}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "flags")):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _build_name(source: Path, prefix: str) -> str:
    h = hashlib.sha256()
    headers = sorted(source.parent.glob("*.h"))  # a changed shared header rebuilds every kernel that may include it
    for part in (source.read_bytes(), *(p.read_bytes() for p in headers), " ".join(CFLAGS + LDFLAGS).encode(),
                 torch.__version__.encode(),
                 _cpu_model().encode(), platform.machine().encode()):
        h.update(part)
    return f"{prefix}_{h.hexdigest()[:12]}"


def _build_dir(name: str) -> Path:
    root = os.environ.get("SSMREC_CACHE_DIR")
    base = Path(root) if root else Path.home() / ".cache" / "ssmrec"
    path = base / "torch_extensions" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def shown_build_dir(name: str) -> str:
    """The build folder as messages name it: `$SSMREC_CACHE_DIR/...` or `~/.cache/ssmrec/...`, never this machine's
    absolute path (the message lands in notebooks and reports that are committed)."""
    base = "$SSMREC_CACHE_DIR" if os.environ.get("SSMREC_CACHE_DIR") else "~/.cache/ssmrec"
    return f"{base}/torch_extensions/{name}"


def _load_once(op: str):
    """Build (or load the cached build of) the extension of `op` once per process; failures are remembered."""
    state = _states[op]
    if state["tried"]:
        return state["module"]
    state["tried"] = True
    source, prefix, what = EXTENSIONS[op]
    try:
        from torch.utils.cpp_extension import load

        name = _build_name(source, prefix)
        build_dir = _build_dir(name)
        cached = any(build_dir.glob(f"{name}*.so"))
        if not cached:
            log.warning("building ssmrec %s (one-time, ~%d s) in %s", what, _EXPECTED_BUILD_S, shown_build_dir(name))
        t0 = time.perf_counter()
        # copies: `load` appends torch's libraries to extra_ldflags in place, which changed the flags (and so the
        # build name) of every extension loaded after the first one in a process: a rebuild whenever the load
        # order differed
        state["module"] = load(name=name, sources=[str(source)], extra_cflags=list(CFLAGS),
                               extra_ldflags=list(LDFLAGS), build_directory=str(build_dir), verbose=False)
        state["build_s"] = time.perf_counter() - t0
        if not cached:
            log.warning("ssmrec %s built in %.1f s", what, state["build_s"])
    except Exception as e:  # no compiler, no ninja, compile error, ...
        state["error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"
    return state["module"]


def disabled() -> bool:
    """True when SSMREC_DISABLE_CPU_EXT is set (to anything but "" or "0"); read on every call."""
    return os.environ.get("SSMREC_DISABLE_CPU_EXT", "") not in ("", "0")


def module(op: str):
    """The compiled extension of `op` ("selective_scan" | "stream_step" | "ssd"), built on the first call; None when it
    is disabled or does not build. Every use of a C++ kernel goes through this function."""
    if op not in EXTENSIONS:
        raise ValueError(f"no C++ extension for {op!r}; there is one for {sorted(EXTENSIONS)}")
    if disabled():
        return None
    return _load_once(op)


def unavailable_reason(op: str) -> str | None:
    """None when `module(op)` loads, else why not (builds on the first call)."""
    if disabled():
        return "SSMREC_DISABLE_CPU_EXT is set"
    if module(op) is None:
        return f"the C++ extension did not build ({_states[op]['error']})"
    return None


def available(op: str = "selective_scan") -> bool:
    """True when the C++ kernel of `op` can be used (builds it on the first call)."""
    return unavailable_reason(op) is None


def build_info(op: str = "selective_scan") -> dict:
    """Provenance, without building: whether a load was tried, whether it loaded, how long loading/building took,
    and why it failed if it did."""
    s = _states[op]
    return {"tried": s["tried"], "loaded": s["module"] is not None, "load_or_build_s": s["build_s"],
            "error": s["error"], "disabled": disabled()}


def scan_unsupported(u: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor) -> str | None:
    """None when the C++ scan covers these inputs, else why not (it takes CPU tensors, input-dependent B and C
    (B, N, L) and a real A)."""
    if u.device.type != "cpu":
        return f"the C++ scan runs on CPU tensors, got {u.device.type}"
    if B.dim() != 3 or C.dim() != 3:
        return "the C++ scan covers input-dependent B and C (B, N, L), not constant (D, N) ones"
    if torch.is_complex(A):
        return "the C++ scan covers a real A only"
    return None


def _required(op: str, what: str):
    """The loaded extension of `op`, or RuntimeError naming `what` and why it is unavailable."""
    mod = module(op)
    if mod is None:
        raise RuntimeError(f"C++ {what} unavailable: {unavailable_reason(op)}")
    return mod


def _empty(ref: torch.Tensor) -> torch.Tensor:
    return ref.new_empty(0)


class _SelectiveScanCPU(torch.autograd.Function):
    """Autograd wrapper: forward saves the (float) inputs; backward recomputes states in C++."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus):
        ctype = torch.float64 if u.dtype == torch.float64 else torch.float32
        ctx.dtypes = [None if t is None else t.dtype for t in (u, delta, A, B, C, D, z, delta_bias)]
        cast = lambda t: None if t is None else t.detach().to(ctype).contiguous()  # noqa: E731
        u_, delta_, A_, D_, z_, bias_ = (cast(t) for t in (u, delta, A, D, z, delta_bias))
        Bt = B.detach().to(ctype).transpose(1, 2).contiguous()  # (B, L, N)
        Ct = C.detach().to(ctype).transpose(1, 2).contiguous()  # (B, L, N)
        opt = lambda t: _empty(u_) if t is None else t  # noqa: E731
        scan = _required("selective_scan", "selective scan")
        y, last = scan.fwd(u_, delta_, A_, Bt, Ct, opt(D_), opt(z_), opt(bias_), bool(delta_softplus))
        ctx.save_for_backward(u_, delta_, A_, Bt, Ct, D_, z_, bias_)
        ctx.delta_softplus = bool(delta_softplus)
        ctx.set_materialize_grads(False)
        return y.to(u.dtype), last.to(u.dtype)

    @staticmethod
    def backward(ctx, dy, dlast):
        u_, delta_, A_, Bt, Ct, D_, z_, bias_ = ctx.saved_tensors
        dy = torch.zeros_like(u_) if dy is None else dy.to(u_.dtype).contiguous()
        dlast = _empty(u_) if dlast is None else dlast.to(u_.dtype).contiguous()
        opt = lambda t: _empty(u_) if t is None else t  # noqa: E731
        du, ddelta, dA_part, dBt, dCt, dD_part, dz, dbias_part = _required("selective_scan", "selective scan").bwd(
            dy, dlast, u_, delta_, A_, Bt, Ct, opt(D_), opt(z_), opt(bias_), ctx.delta_softplus)
        grads = [du, ddelta, dA_part.sum(0), dBt.transpose(1, 2), dCt.transpose(1, 2),
                 dD_part.sum(0) if D_ is not None else None, dz if z_ is not None else None,
                 dbias_part.sum(0) if bias_ is not None else None]
        out = [None if g is None else g.to(dt) for g, dt in zip(grads, ctx.dtypes)]
        return (*out, None)


def selective_scan_cpu(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                       return_last_state=False):
    """Selective scan on the C++ kernel (same signature and shapes as `scan.selective_scan_ref`).

    u, delta, z (B, D, L); A (D, N) real; B, C (B, N, L) input-dependent; D, delta_bias (D,).
    Returns y (B, D, L) [, last_state (B, D, N)]. Never falls back: raises ValueError for inputs the kernel does
    not cover (`scan_unsupported`) and RuntimeError when the extension is unavailable. Choosing between this and
    the reference is `ssm/kernels.py`'s job (`scan.selective_scan(..., kernel="cpu" | "auto")`).
    """
    why = scan_unsupported(u, A, B, C)
    if why is not None:
        raise ValueError(why)
    y, last = _SelectiveScanCPU.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    return (y, last) if return_last_state else y


# ------------------------------------------------------------------------------------------------ SSD
def ssd_unsupported(X: torch.Tensor, A: torch.Tensor) -> str | None:
    """None when the C++ SSD covers these inputs, else why not (CPU tensors, a real scalar A per head)."""
    if X.device.type != "cpu":
        return f"the C++ SSD runs on CPU tensors, got {X.device.type}"
    if A.dim() != 1 or torch.is_complex(A):
        return "the C++ SSD covers a real scalar A per head (h,)"
    return None


class _SSDCPU(torch.autograd.Function):
    """Autograd wrapper: forward saves the (float) inputs; backward recomputes the states in C++."""

    @staticmethod
    def forward(ctx, X, dt, A, B, C, initial_states):
        ctype = torch.float64 if X.dtype == torch.float64 else torch.float32
        ctx.dtypes = [None if t is None else t.dtype for t in (X, dt, A, B, C, initial_states)]
        cast = lambda t: None if t is None else t.detach().to(ctype).contiguous()  # noqa: E731
        X_, dt_, A_, B_, C_, S0 = (cast(t) for t in (X, dt, A, B, C, initial_states))
        y, last = _required("ssd", "SSD").fwd(X_, dt_, A_, B_, C_, _empty(X_) if S0 is None else S0)
        ctx.save_for_backward(X_, dt_, A_, B_, C_, S0)
        ctx.set_materialize_grads(False)
        return y, last

    @staticmethod
    def backward(ctx, dy, dlast):
        X_, dt_, A_, B_, C_, S0 = ctx.saved_tensors
        dy = torch.zeros_like(X_) if dy is None else dy.to(X_.dtype).contiguous()
        dlast = _empty(X_) if dlast is None else dlast.to(X_.dtype).contiguous()
        dX, ddt, dA_part, dB_part, dC_part, dS0 = _required("ssd", "SSD").bwd(
            dy, dlast, X_, dt_, A_, B_, C_, _empty(X_) if S0 is None else S0)
        b, l, g, n = B_.shape
        h = X_.shape[2]
        # (b, h, l, n) per head -> (b, l, g, n): the heads of a group share B and C
        per_group = lambda t: t.view(b, g, h // g, l, n).sum(2).transpose(1, 2)  # noqa: E731
        grads = [dX, ddt, dA_part.sum(0), per_group(dB_part), per_group(dC_part), dS0 if S0 is not None else None]
        return tuple(None if gr is None else gr.to(dtype) for gr, dtype in zip(grads, ctx.dtypes))


def ssd_cpu(X, dt, A, B, C, initial_states=None):
    """The SSD recurrence on the C++ kernel: y_t = S_t C_t, S_t = exp(dt_t A) S_{t-1} + dt_t x_t B_t^T per head.

    X (b, l, h, p); dt (b, l, h) already biased / softplus-ed; A (h,); B, C (b, l, g, n); initial_states
    (b, h, p, n) | None. Returns (y (b, l, h, p), final states (b, h, p, n)) in the compute dtype (float32, or
    float64 for float64 X). No D, no gate: `ssd.ssd` adds them. Raises ValueError for inputs it does not cover.
    """
    why = ssd_unsupported(X, A)
    if why is not None:
        raise ValueError(why)
    return _SSDCPU.apply(X, dt, A, B, C, initial_states)
