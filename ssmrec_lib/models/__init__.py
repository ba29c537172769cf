"""Sequential recommenders: one contract (`forward(item_seq, lengths) -> (B, L, D)`, `score(h) -> (B, n_items)`),
one registry (`build_model("mamba4rec", n_items, max_len, overrides)`), one file per model with its config.

    base.py       SequentialModel (embedding, read-out, scoring), real_mask
    layers.py     PFFN, self-attention, transformer layer (SASRec, BERT4Rec)
    ssmrec.py     the SSM recommenders' shared body (SSMLayer, SSMRec)
    pop sasrec bert4rec gru4rec lrurec mamba4rec mamba2rec hydra4rec   the models
What a notebook or a user imports is exported here.
"""

from .base import SequentialModel, real_mask
from .bert4rec import BERT4Rec, BERT4RecConfig
from .gru4rec import GRU4Rec, GRU4RecConfig
from .hydra4rec import Hydra4Rec, Hydra4RecConfig
from .lrurec import LRURec, LRURecConfig
from .mamba2rec import Mamba2Rec, Mamba2RecConfig
from .mamba4rec import Mamba4Rec, Mamba4RecConfig
from .pop import Pop, PopConfig
from .registry import available_models, build_model, get_model_class, make_model_config, register_model
from .sasrec import SASRec, SASRecConfig
from .ssmrec import SSMLayer, SSMRec

__all__ = [
    "SequentialModel", "real_mask", "BERT4Rec", "BERT4RecConfig", "GRU4Rec", "GRU4RecConfig", "Hydra4Rec",
    "Hydra4RecConfig", "LRURec", "LRURecConfig", "Mamba2Rec", "Mamba2RecConfig", "Mamba4Rec", "Mamba4RecConfig",
    "Pop", "PopConfig", "available_models", "build_model", "get_model_class", "make_model_config", "register_model",
    "SASRec", "SASRecConfig", "SSMLayer", "SSMRec",
]
