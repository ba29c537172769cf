"""Hydra4Rec (the paper's Hydra variant): Mamba4Rec's body (models/mamba4rec.py) with Hydra blocks.

Hydra is bidirectional (a quasiseparable mixer: forward SSD below the diagonal, backward SSD above it, and a
two-sided conv), so reading position t would see items after t. Training is therefore the cloze objective
(objectives.py) and the next-item read-out appends a [MASK] token after the history and reads that last
position, as BERT4Rec does (base.SequentialModel.readout): the paper's "last-position read-out", made leak-free.
With left padding the [MASK] sits at L-1, so nothing real lies after it; padding is masked inside the block.
readout="last" is the other leak-free reading of "last-position read-out" (likely the paper's, which ran on
Mamba4Rec's RecBole code): read h at the last history item and train on prefixes only (objective last_item,
chosen automatically), so no input ever lies after the position read.
Defaults follow Hydra's public code: N = 64, P = 64 (2 heads at d = 64), d_conv = 7 (44,678 params:
docs/measured_facts.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import nn

from ..config import ConfigError
from .ssmrec import SSMRec
from .registry import register_model


@dataclass(frozen=True)
class Hydra4RecConfig:
    d_model: int = 64
    n_layers: int = 1
    d_state: int = 64  # N
    d_conv: int = 7  # two-sided, odd
    expand: int = 2
    headdim: int = 64  # P; expand * d_model must be divisible by it
    chunk_size: int = 64
    d_ff: int = 256  # 4 d
    dropout: float = 0.2
    readout: Literal["mask", "last"] = "mask"  # mask: append [MASK], cloze; last: last item, prefixes
    init: Literal["mamba4rec", "block"] = "mamba4rec"
    # ssm/kernels.py: "ref" PyTorch, "cpu" C++, "fused" CUDA, "auto" the fastest available;
    # "cpu": the quasiseparable mixer's two SSD passes on the C++ recurrence; conv and norm in PyTorch
    kernel: Literal["auto", "ref", "cpu", "fused"] = "auto"

    def __post_init__(self) -> None:
        if (self.expand * self.d_model) % self.headdim:
            raise ConfigError(f"Hydra4RecConfig: expand * d_model = {self.expand * self.d_model} is not divisible by "
                              f"headdim = {self.headdim}; choose a headdim that divides it")


@register_model("hydra4rec")
class Hydra4Rec(SSMRec):
    config_cls = Hydra4RecConfig
    bidirectional = True

    def make_block(self) -> nn.Module:
        from ..ssm.hydra import Hydra

        c = self.config
        return Hydra(c.d_model, d_state=c.d_state, d_conv=c.d_conv, expand=c.expand, headdim=c.headdim,
                     chunk_size=c.chunk_size, kernel=c.kernel)
