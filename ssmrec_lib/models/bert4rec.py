"""BERT4Rec (Sun et al. 2019): a bidirectional transformer trained with the cloze (masked-item) objective.

Same body as SASRec (models/sasrec.py) without the causal mask. The item table has one extra row, the [MASK]
token (id n_items + 1), which is never scored. Next-item prediction appends [MASK] after the history and reads
that position (base.SequentialModel.readout); training masks random items and always, with some probability,
the last one (objectives.cloze), so the model practises exactly that read-out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .registry import register_model
from .sasrec import TransformerRec


@dataclass(frozen=True)
class BERT4RecConfig:
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 2
    d_ff: int = 256  # 4 d
    dropout: float = 0.2
    readout: Literal["mask", "last"] = "mask"  # mask: append [MASK], cloze; last: last item, prefixes
    attn_dropout: float = 0.2
    norm_first: bool = False  # post-LN as in BERT / BERT4Rec


@register_model("bert4rec")
class BERT4Rec(TransformerRec):
    config_cls = BERT4RecConfig
    bidirectional = True
