"""Kernel-path selection: the ONLY dispatcher. It alone imports mamba_ssm / causal_conv1d (lazily, inside
try/except) and loads the C++ extension (through `ssm/cpu_ext.py`, which builds it).

kernel = "ref" | "cpu" | "fused" | "auto", resolved per op (`OPS`) for the device of the op's tensors:
- "ref":   pure-PyTorch maths, on any device. Never loads the C++ extension nor imports the CUDA packages.
- "cpu":   the C++ extension (`ssm/csrc`, built by `ssm/cpu_ext.py`) for the ops it implements: the selective
           scan, the SSD recurrence (2Mamba4Rec and, through it, Hydra4Rec's quasiseparable mixer) and the
           streaming step of Mamba4Rec / 2Mamba4Rec (`ssm/fused_step.py`). The other ops have no
           C++ kernel and run the PyTorch maths. CPU tensors only. Raises `KernelUnavailable` with the hint when
           the extension does not build, is disabled (SSMREC_DISABLE_CPU_EXT=1), or does not cover the inputs
           (e.g. constant B / C for the scan, a float64 or training-mode model for the streaming step).
- "fused": the CUDA kernels of mamba-ssm / causal-conv1d (and their Triton kernels). CUDA tensors only. The
           streaming step has no single fused kernel: under "fused" the Python step runs, and its conv and state
           update take the fused kernels. Raises `KernelUnavailable` with the install hint when they (or CUDA)
           are absent.
- "auto":  the fastest path available on the tensors' device: CUDA -> "fused" when the op's kernel imports,
           else "ref"; CPU -> "cpu" when the op has a C++ kernel that builds and covers the inputs, else "ref".
           Logs each choice once (per op, device type and path), with the reason when it falls back.

Probing happens once per process (the CUDA imports: functools.cache; the C++ build: `cpu_ext`), on the first
call that needs it, never at import time of the package.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any, Literal

from . import cpu_ext

log = logging.getLogger(__name__)

KernelChoice = Literal["auto", "ref", "cpu", "fused"]
KernelPath = Literal["ref", "cpu", "fused"]
CHOICES = ("auto", "ref", "cpu", "fused")

# op -> (has a C++ kernel, the FusedKernels field of its CUDA kernel or None)
OPS: dict[str, tuple[bool, str | None]] = {
    "selective_scan": (True, "selective_scan_fn"),
    "selective_state_update": (False, "selective_state_update"),
    "ssd": (True, "mamba_chunk_scan_combined"),
    "rms_norm_gated": (False, "rms_norm_gated_fn"),
    "causal_conv1d": (False, "causal_conv1d_fn"),
    "causal_conv1d_update": (False, "causal_conv1d_update"),
    "stream_step": (True, None),
}

INSTALL_HINT = (
    "Fused kernels need a CUDA machine and the GPU extra: "
    "`pip install -r requirements-gpu.txt` (see README 'GPU'). "
    "On CPU use kernel='cpu', 'ref' or 'auto'."
)
CPU_HINT = (
    "The C++ kernels are built on first use by torch.utils.cpp_extension: they need a C++ compiler with OpenMP "
    "(g++) and `pip install ninja`, and SSMREC_DISABLE_CPU_EXT unset. kernel='ref' or 'auto' runs without them; "
    "on CUDA use kernel='fused', 'ref' or 'auto'."
)


class KernelUnavailable(RuntimeError):
    """An explicit kernel choice ('cpu' or 'fused') cannot run here; the message says why and how to install it."""


@dataclass(frozen=True)
class FusedKernels:
    """Handles to the fused functions that imported successfully (None where a piece is missing)."""

    selective_scan_fn: Any = None          # mamba_ssm.ops.selective_scan_interface.selective_scan_fn
    selective_state_update: Any = None     # mamba_ssm.ops.triton.selective_state_update
    mamba_chunk_scan_combined: Any = None  # mamba_ssm.ops.triton.ssd_combined.mamba_chunk_scan_combined
    rms_norm_gated_fn: Any = None          # mamba_ssm.ops.triton.layernorm_gated.rmsnorm_fn
    causal_conv1d_fn: Any = None           # causal_conv1d.causal_conv1d_fn
    causal_conv1d_update: Any = None       # causal_conv1d.causal_conv1d_update
    errors: tuple[str, ...] = ()

    @property
    def any(self) -> bool:
        return any(
            f is not None
            for f in (self.selective_scan_fn, self.mamba_chunk_scan_combined, self.causal_conv1d_fn)
        )


def _try(modname: str, attr: str, errors: list[str]):
    try:
        mod = __import__(modname, fromlist=[attr])
        return getattr(mod, attr)
    except Exception as e:  # ImportError, missing CUDA extension, Triton without a GPU, ...
        errors.append(f"{modname}.{attr}: {type(e).__name__}: {e}")
        return None


@functools.cache
def fused_kernels() -> FusedKernels:
    """Import the fused kernels once. Without CUDA nothing is imported at all."""
    try:
        import torch

        cuda = torch.cuda.is_available()
    except Exception:  # pragma: no cover
        cuda = False
    if not cuda:
        return FusedKernels(errors=("CUDA is not available",))
    errors: list[str] = []
    k = FusedKernels(
        selective_scan_fn=_try("mamba_ssm.ops.selective_scan_interface", "selective_scan_fn", errors),
        selective_state_update=_try("mamba_ssm.ops.triton.selective_state_update", "selective_state_update", errors),
        mamba_chunk_scan_combined=_try("mamba_ssm.ops.triton.ssd_combined", "mamba_chunk_scan_combined", errors),
        rms_norm_gated_fn=_try("mamba_ssm.ops.triton.layernorm_gated", "rmsnorm_fn", errors),
        causal_conv1d_fn=_try("causal_conv1d", "causal_conv1d_fn", errors),
        causal_conv1d_update=_try("causal_conv1d", "causal_conv1d_update", errors),
        errors=tuple(errors),
    )
    return k


def cpu_kernel(op: str):
    """The C++ implementation of `op`, for the op's module to call once `resolve(...)` said "cpu":
    "selective_scan" -> the autograd-wrapped scan (`cpu_ext.selective_scan_cpu`), "ssd" -> the autograd-wrapped
    SSD recurrence (`cpu_ext.ssd_cpu`), "stream_step" -> the compiled extension (its `model_step`, used by
    `ssm/fused_step.py`). Raises KernelUnavailable when it does not load."""
    if not OPS.get(op, (False, None))[0]:
        raise ValueError(f"{op!r} has no C++ kernel; these do: {[o for o, (c, _) in OPS.items() if c]}")
    why = cpu_ext.unavailable_reason(op)
    if why is not None:
        raise KernelUnavailable(f"cpu {op} unavailable ({why}). {CPU_HINT}")
    wrapped = {"selective_scan": cpu_ext.selective_scan_cpu, "ssd": cpu_ext.ssd_cpu}
    return wrapped.get(op) or cpu_ext.module(op)


scan_cpu_unsupported = cpu_ext.scan_unsupported  # (u, A, B, C) -> why the C++ scan cannot take them, or None
ssd_cpu_unsupported = cpu_ext.ssd_unsupported  # (X, A) -> why the C++ SSD cannot take them, or None


def cpu_unavailable_reason(op: str) -> str | None:
    """None when the C++ kernel of `op` loads (builds it on the first call), else why not."""
    if not OPS[op][0]:
        return f"{op} has no C++ kernel"
    return cpu_ext.unavailable_reason(op)


def _device_type(device: Any) -> str:
    if device is None:
        return "cpu"
    return getattr(device, "type", None) or str(device).split(":")[0]


def _fused_missing(op: str, dev: str) -> str | None:
    """None when the CUDA kernel of `op` can run on `dev` tensors, else why not."""
    if dev != "cuda":
        return f"tensors are on {dev}, fused kernels need CUDA tensors"
    field = OPS[op][1]
    if field is None:
        return f"{op} has no fused CUDA kernel"
    if getattr(fused_kernels(), field) is None:
        return "; ".join(fused_kernels().errors) or "import failed"
    return None


_logged: set[tuple[str, str, str]] = set()  # (op, device type, choice) already logged


def _log_auto(op: str, dev: str, choice: str, why: str | None, build_failed: bool) -> None:
    if (op, dev, choice) in _logged:
        return
    _logged.add((op, dev, choice))
    level = logging.WARNING if build_failed else logging.INFO  # the C++ kernels ship with the package
    log.log(level, "kernel='auto' for %s on %s -> %s%s", op, dev, choice, f" ({why})" if why else "")


def resolve(kernel: KernelChoice, op: str, device: Any = None,
            cpu_unsupported: str | None = None) -> KernelPath:
    """The path `op` takes for `kernel` on `device` (the device of its input tensors; None = CPU): "ref", "cpu"
    or "fused" (see the module docstring). Raises KernelUnavailable for an explicit choice that cannot run.

    cpu_unsupported: why the C++ kernel cannot take these particular inputs (None = it can); the caller knows
    the inputs, this module knows the extension.
    """
    if kernel not in CHOICES:
        raise ValueError(f"kernel must be one of {list(CHOICES)}, got {kernel!r}")
    if op not in OPS:
        raise ValueError(f"unknown op {op!r}; known ops: {sorted(OPS)}")
    if kernel == "ref":
        return "ref"
    has_cpp, fused_field = OPS[op]
    dev = _device_type(device)
    if kernel == "cpu":
        if dev != "cpu":
            raise KernelUnavailable(f"kernel='cpu' for {op}: tensors are on {dev}, the C++ kernels take CPU tensors. "
                                    f"{CPU_HINT}")
        if not has_cpp:
            return "ref"  # no C++ kernel for this op: its PyTorch maths is the CPU path
        why = cpu_unsupported or cpu_ext.unavailable_reason(op)
        if why is not None:
            raise KernelUnavailable(f"cpu {op} unavailable ({why}). {CPU_HINT}")
        return "cpu"
    if kernel == "fused":
        if fused_field is None and dev == "cuda":
            return "ref"  # a composite (the streaming step): its parts take the fused kernels
        why = _fused_missing(op, dev)
        if why is not None:
            raise KernelUnavailable(f"fused {op} unavailable ({why}). {INSTALL_HINT}")
        return "fused"
    # auto
    build_failed = False
    if dev == "cuda":
        why = _fused_missing(op, dev)
        choice = "ref" if why else "fused"
    elif dev == "cpu" and has_cpp:
        why = cpu_unsupported or cpu_ext.unavailable_reason(op)
        choice = "ref" if why else "cpu"
        build_failed = why is not None and cpu_unsupported is None and not cpu_ext.disabled()
    else:
        why = f"no C++ kernel for {op}" if dev == "cpu" else f"no kernel for {dev} tensors"
        choice = "ref"
    _log_auto(op, dev, choice, why, build_failed)
    return choice


def path_name(kernel: KernelChoice, op: str, device: Any = None) -> str:
    """The path `op` takes, for provenance: "fused", "cpu-ext" (a C++ kernel), "ref", or "unavailable" (an
    explicit choice that cannot run here)."""
    try:
        choice = resolve(kernel, op, device)
    except KernelUnavailable:
        return "unavailable"
    return "cpu-ext" if choice == "cpu" else choice


def describe() -> dict[str, Any]:
    """What is available, for result provenance: the fused CUDA kernels that imported, the import errors, and the
    state of each C++ extension (not built by this call)."""
    k = fused_kernels()
    return {
        name: getattr(k, name) is not None
        for name in (
            "selective_scan_fn", "selective_state_update", "mamba_chunk_scan_combined",
            "rms_norm_gated_fn", "causal_conv1d_fn", "causal_conv1d_update",
        )
    } | {"errors": list(k.errors), "cpu_ext": {op: cpu_ext.build_info(op) for op in cpu_ext.EXTENSIONS}}
