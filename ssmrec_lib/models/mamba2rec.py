"""2Mamba4Rec (the paper's Mamba2 variant): Mamba4Rec's body (models/mamba4rec.py) with Mamba2 (SSD) blocks.

Small hidden sizes: Mamba2 needs expand * d_model divisible by headdim (P). The default P = 32 gives
d_inner = 128 and nheads H = 4 at d = 64 (mamba-ssm's P = 64 would leave only 2 heads); `make_block` checks the
divisibility and names the fix. d_state N = 64 (Mamba2's default), chunk_size Q = 64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import nn

from ..config import ConfigError
from .ssmrec import SSMRec
from .registry import register_model


@dataclass(frozen=True)
class Mamba2RecConfig:
    d_model: int = 64
    n_layers: int = 1
    d_state: int = 64  # N (Mamba2 default)
    d_conv: int = 4
    expand: int = 2
    headdim: int = 32  # P; expand * d_model must be divisible by it (4 heads at d = 64)
    ngroups: int = 1
    chunk_size: int = 64  # Q
    d_ff: int = 256  # 4 d
    dropout: float = 0.2
    init: Literal["mamba4rec", "block"] = "mamba4rec"
    # ssm/kernels.py: "ref" PyTorch, "cpu" C++, "fused" CUDA, "auto" the fastest available;
    # "cpu": the C++ SSD recurrence and streaming step; the conv and norm have no C++ kernel (PyTorch on CPU)
    kernel: Literal["auto", "ref", "cpu", "fused"] = "auto"

    def __post_init__(self) -> None:
        if (self.expand * self.d_model) % self.headdim:
            raise ConfigError(f"Mamba2RecConfig: expand * d_model = {self.expand * self.d_model} is not divisible by "
                              f"headdim = {self.headdim}; choose a headdim that divides it (e.g. 16 or 32)")


@register_model("mamba2rec")
class Mamba2Rec(SSMRec):
    config_cls = Mamba2RecConfig

    def make_block(self) -> nn.Module:
        from ..ssm.mamba2 import Mamba2

        c = self.config
        return Mamba2(c.d_model, d_state=c.d_state, d_conv=c.d_conv, expand=c.expand, headdim=c.headdim,
                      ngroups=c.ngroups, chunk_size=c.chunk_size, kernel=c.kernel)
