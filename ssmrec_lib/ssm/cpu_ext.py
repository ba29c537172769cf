"""Fused selective scan for CPU: a torch C++ extension, JIT-built on first use, with an autograd wrapper.

Glossary: as in `ssm/scan.py` (u, delta, A, B, C, D, z, delta_bias; dt = softplus(delta + delta_bias);
Ab = exp(dt A) ZOH for A, Bb = dt B Euler for B, as Mamba does).

- Sources: `ssm/csrc/selective_scan_cpu.cpp` (shipped as package data). Built with
  `torch.utils.cpp_extension.load` (needs a C++ compiler and `ninja`), `-O3 -march=native -ffast-math`,
  parallel over batch x channel (forward) and over batch (backward) with ATen's OpenMP thread pool
  (`torch.set_num_threads` applies).
- Build folder: `$SSMREC_CACHE_DIR/torch_extensions/<name>` or `~/.cache/ssmrec/torch_extensions/<name>`;
  the name carries a hash of the source, the flags, the torch version and the CPU model, so a new source (or a
  different machine sharing the cache) rebuilds instead of loading a stale or illegal binary.
- The build never happens at import: the first `available()` / `selective_scan_cpu` call builds (~25 s once on
  the 2-core dev machine), later processes load the cached library in ~0.2 s.
- If the build fails (no compiler, no ninja, ...) or `SSMREC_DISABLE_CPU_EXT=1`, `available()` is False and
  `selective_scan_cpu` falls back to `scan.selective_scan_ref`, with ONE warning naming the reason.
- Backward: the forward saves only its inputs; the backward RECOMPUTES each channel's states into a
  thread-local (L+1) x N buffer (no (B, D, L, N) tensor is ever stored), then runs the adjoint recurrence.
- Benchmark against the reference: `python -m ssmrec_lib.ssm.cpu_ext [--batch 128 --length 200 --d-inner 128
  --d-state 32 --repeats 3]` (prints measured times and the max errors of values and gradients).
- Dtypes: float32 and float64 run natively; other dtypes (bf16, fp16) are computed in float32 and cast back.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import time
import warnings
from pathlib import Path

import torch

log = logging.getLogger(__name__)

__all__ = ["available", "selective_scan_cpu", "build_info", "SOURCE"]

SOURCE = Path(__file__).resolve().parent / "csrc" / "selective_scan_cpu.cpp"
CFLAGS = ["-O3", "-march=native", "-ffast-math", "-fopenmp"]  # -ffast-math: lets gcc vectorise exp (libmvec)
LDFLAGS = ["-fopenmp"]  # no -ffast-math at link time: crtfastmath.o would flush denormals process-wide
_EXPECTED_BUILD_S = 30

_state: dict = {"module": None, "error": None, "tried": False, "build_s": None, "warned": False}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "flags")):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _build_name(source: Path = SOURCE, prefix: str = "ssmrec_scan_cpu") -> str:
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


def load_extension(source: Path, prefix: str, state: dict, what: str):
    """Build (or load the cached build of) the extension `source` once per process into `state`
    ({"module", "error", "tried", "build_s"}); failures are remembered, never raised. Shared by every C++
    kernel of the package (this scan, ssm/fused_step.py)."""
    if state["tried"]:
        return state["module"]
    state["tried"] = True
    try:
        from torch.utils.cpp_extension import load

        name = _build_name(source, prefix)
        build_dir = _build_dir(name)
        cached = any(build_dir.glob(f"{name}*.so"))
        if not cached:
            log.warning("building ssmrec %s (one-time, ~%d s) in %s", what, _EXPECTED_BUILD_S, build_dir)
        t0 = time.perf_counter()
        state["module"] = load(name=name, sources=[str(source)], extra_cflags=CFLAGS, extra_ldflags=LDFLAGS,
                               build_directory=str(build_dir), verbose=False)
        state["build_s"] = time.perf_counter() - t0
        if not cached:
            log.warning("ssmrec %s built in %.1f s", what, state["build_s"])
    except Exception as e:  # no compiler, no ninja, compile error, ...
        state["error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"
    return state["module"]


def _load():
    """The scan extension (built once per process)."""
    return load_extension(SOURCE, "ssmrec_scan_cpu", _state, "CPU scan extension")


def _fallback_reason() -> str | None:
    if os.environ.get("SSMREC_DISABLE_CPU_EXT", "") not in ("", "0"):
        return "SSMREC_DISABLE_CPU_EXT is set"
    if _load() is None:
        return f"the C++ extension did not build ({_state['error']})"
    return None


def available() -> bool:
    """True when the C++ scan can be used (builds it on the first call). Warns once when it cannot."""
    reason = _fallback_reason()
    if reason is not None and not _state["warned"]:
        _state["warned"] = True
        warnings.warn(f"ssmrec: CPU selective-scan kernel unavailable, using the slower reference: {reason}",
                      RuntimeWarning, stacklevel=2)
    return reason is None


def build_info() -> dict:
    """Provenance: whether the extension loaded, how long loading/building took, and why it failed if it did."""
    return {"loaded": _state["module"] is not None, "load_or_build_s": _state["build_s"], "error": _state["error"],
            "disabled": os.environ.get("SSMREC_DISABLE_CPU_EXT", "") not in ("", "0")}


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
        y, last = _load().fwd(u_, delta_, A_, Bt, Ct, opt(D_), opt(z_), opt(bias_), bool(delta_softplus))
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
        du, ddelta, dA_part, dBt, dCt, dD_part, dz, dbias_part = _load().bwd(
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
    Returns y (B, D, L) [, last_state (B, D, N)]. Falls back to the reference when the kernel is unavailable
    or for shapes it does not cover (constant B/C, complex A).
    """
    if not available() or B.dim() != 3 or C.dim() != 3 or torch.is_complex(A) or u.device.type != "cpu":
        from .scan import selective_scan_ref

        return selective_scan_ref(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    y, last = _SelectiveScanCPU.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    return (y, last) if return_last_state else y


def _benchmark(argv=None) -> int:
    """Time reference vs C++ (forward, forward+backward; median of --repeats) and print the max errors."""
    import argparse
    import statistics

    from .scan import selective_scan_ref

    p = argparse.ArgumentParser(description=_benchmark.__doc__)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--length", type=int, default=200)
    p.add_argument("--d-inner", type=int, default=128)
    p.add_argument("--d-state", type=int, nargs="+", default=[32, 16])
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    ok = available()
    print(f"torch threads {torch.get_num_threads()}; extension available={ok}; load/build "
          f"{time.perf_counter() - t0:.1f} s; {build_info()}")
    if not ok:
        return 1
    Bsz, Dm, L = a.batch, a.d_inner, a.length

    def timed(fn, reps):
        ts = []
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        return statistics.median(ts) * 1e3

    for N in a.d_state:
        g = torch.Generator().manual_seed(0)
        r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
        ins = [r(Bsz, Dm, L), r(Bsz, Dm, L) * 0.5 - 2, -torch.arange(1.0, N + 1).repeat(Dm, 1), r(Bsz, N, L),
               r(Bsz, N, L), r(Dm), r(Bsz, Dm, L), r(Dm) * 0.1]
        ins = [t.requires_grad_() for t in ins]
        gy = r(Bsz, Dm, L)
        res = {}
        for name, fn in (("reference", selective_scan_ref), ("C++", selective_scan_cpu)):
            with torch.no_grad():
                t_f = timed(lambda: fn(*ins, delta_softplus=True), a.repeats)
            t_fb = timed(lambda: torch.autograd.grad(fn(*ins, delta_softplus=True), ins, gy), a.repeats)
            y = fn(*ins, delta_softplus=True)
            res[name] = (y, *torch.autograd.grad(y, ins, gy))
            print(f"B={Bsz} L={L} D={Dm} N={N} {name:>9}: fwd {t_f:8.1f} ms   fwd+bwd {t_fb:8.1f} ms", flush=True)
        for what, got, ref in zip(("y", "du", "ddelta", "dA", "dB", "dC", "dD", "dz", "ddelta_bias"),
                                  res["C++"], res["reference"]):
            err = (got - ref).abs().max()
            print(f"    {what:>11}: max abs err {err:.2e}   max abs err / max |ref| {err / ref.abs().max():.2e}")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    raise SystemExit(_benchmark())
