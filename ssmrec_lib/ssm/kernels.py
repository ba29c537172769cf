"""Kernel-path selection: the ONLY module that imports mamba_ssm / causal_conv1d (lazily, inside try/except).

kernel = "auto" | "ref" | "fused"
- "ref":   pure-PyTorch reference maths (CPU or GPU).  On CPU the selective scan uses the compiled C++ fast
           path from `ssm/cpu_ext.py` when it builds, which is tested against the reference.
- "fused": mamba-ssm / causal-conv1d CUDA + Triton kernels. Raises `KernelUnavailable` with the install hint
           when they (or CUDA) are absent.
- "auto":  "fused" when the tensors live on CUDA and the kernels import, else "ref". Logs its choice once.

Probing happens once per process (functools.cache) and never at import time of the package.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any, Literal

log = logging.getLogger(__name__)

KernelChoice = Literal["auto", "ref", "fused"]

INSTALL_HINT = (
    "Fused kernels need a CUDA machine and the GPU extra: "
    "`pip install -r requirements-gpu.txt` (see README 'GPU'). "
    "On CPU use kernel='ref' or 'auto'."
)


class KernelUnavailable(RuntimeError):
    """kernel='fused' was asked for where mamba-ssm / causal-conv1d / CUDA are not available."""


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


_logged: set[tuple[str, str]] = set()


def resolve(kernel: KernelChoice, op: str, device: Any = None) -> Literal["ref", "fused"]:
    """Decide the path for `op` ("selective_scan", "ssd", "causal_conv1d", "rms_norm_gated", ...).

    `device` is the device of the input tensors (fused kernels only run on CUDA tensors).
    """
    if kernel not in ("auto", "ref", "fused"):
        raise ValueError(f"kernel must be 'auto', 'ref' or 'fused', got {kernel!r}")
    if kernel == "ref":
        return "ref"
    on_cuda = device is not None and getattr(device, "type", str(device)) == "cuda"
    fn_name = {
        "selective_scan": "selective_scan_fn",
        "selective_state_update": "selective_state_update",
        "ssd": "mamba_chunk_scan_combined",
        "rms_norm_gated": "rms_norm_gated_fn",
        "causal_conv1d": "causal_conv1d_fn",
        "causal_conv1d_update": "causal_conv1d_update",
    }[op]
    available = on_cuda and getattr(fused_kernels(), fn_name) is not None
    if kernel == "fused":
        if not available:
            why = "tensors are not on CUDA" if not on_cuda else "; ".join(fused_kernels().errors) or "import failed"
            raise KernelUnavailable(f"fused {op} unavailable ({why}). {INSTALL_HINT}")
        return "fused"
    choice = "fused" if available else "ref"
    if (op, choice) not in _logged:
        _logged.add((op, choice))
        log.info("kernel='auto' for %s -> %s", op, choice)
    return choice


def path_name(kernel: KernelChoice, op: str, device: Any = None) -> str:
    """The path `op` actually takes, for provenance: "fused", "cpu-ext" (the C++ selective scan on CPU), "ref",
    or "unavailable" (kernel="fused" where it cannot run)."""
    try:
        choice = resolve(kernel, op, device)
    except KernelUnavailable:
        return "unavailable"
    on_cpu = device is None or getattr(device, "type", str(device)) == "cpu"
    if choice == "ref" and op == "selective_scan" and on_cpu:
        from . import cpu_ext

        return "cpu-ext" if cpu_ext.available() else "ref"
    return choice


def describe() -> dict[str, Any]:
    """What is available, for result provenance ("kernel path")."""
    k = fused_kernels()
    return {
        name: getattr(k, name) is not None
        for name in (
            "selective_scan_fn", "selective_state_update", "mamba_chunk_scan_combined",
            "rms_norm_gated_fn", "causal_conv1d_fn", "causal_conv1d_update",
        )
    } | {"errors": list(k.errors)}
