"""Reloading a finished LLM run for inference from the fine-tuned weights in its folder (runs.py saves them).

Files (git-ignored, like the sequence models' checkpoint*.pt):
    <run_dir>/backbone/   the fine-tuned causal LM + its tokenizer (save_pretrained: model.safetensors,
                          config.json, tokenizer.json, ...). GPT4Rec / MamRec: the selected epoch's weights.
                          LlamaRec: the base the adapter sits on: a from-scratch backbone after its stage-0
                          training; for a pretrained backbone only the tokenizer (the base is `backbone.name`).
    <run_dir>/adapter/    LlamaRec only: the LoRA adapter of the selected epoch (peft save_pretrained; peft also
                          stores the embedding matrices there when tokens were added to a pretrained vocabulary).
config.json["weights"] names these folders. `load_run_recommender(run_dir)` rebuilds the recommender from them
(and, for LlamaRec, from the LRURec retriever run named in config.json) with the run's own configuration, so
`recommend(history)` returns the lists the run scored. The backbone keeps the run's label (a from-scratch
backbone stays `pretrained: false` even though it now loads from a folder).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..config import from_dict
from ..errors import UserError


def _read_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "config.json"
    if not path.exists():
        raise UserError(f"{run_dir} is not a run folder (no config.json)")
    cfg = json.loads(path.read_text())
    if "weights" not in cfg:
        raise UserError(f"run {run_dir.name} kept no fine-tuned weights (written before they were saved): "
                        f"rerun it with force=True")
    return cfg


def load_lm(folder: Path, base: str | None = None):
    """(model, tokenizer): tokenizer from `folder`, weights from `base` (a name) or else from `folder`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(base or folder)
    if len(tok) != model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tok))  # the adapter then restores the trained rows (see docstring)
    return model.eval(), tok


def load_run_recommender(run_dir: str | Path, data=None, data_dir: str | None = None):
    """A finished LLM run folder -> its recommender (GPT4Rec or LlamaRecRanker), ready for `recommend(history)`.

    `data` (SequenceData with item_titles) skips loading the run's dataset by name.
    """
    from ..experiment import load_data
    from .backbones import Backbone

    run_dir = Path(run_dir)
    cfg = _read_config(run_dir)
    data = data if data is not None else load_data(cfg["dataset"], data_dir)
    b = cfg["backbone"]
    if cfg["model"] in ("gpt4rec", "mamrec"):
        from .gpt4rec import GPT4Rec, GPT4RecConfig

        model, tok = load_lm(run_dir / cfg["weights"]["backbone"])
        bb = Backbone(model, tok, b["name"], b["architecture"], b["pretrained"], b["tokenizer"])
        return GPT4Rec(from_dict(GPT4RecConfig, cfg["model_config"]), data.item_titles, backbone=bb)
    if cfg["model"] == "llamarec":
        from peft import PeftModel

        from .backbones import letter_token_ids
        from .llamarec import LlamaRecConfig, LlamaRecRanker, load_retriever

        mc = from_dict(LlamaRecConfig, cfg["model_config"])
        base = b["name"] if b["pretrained"] else None
        model, tok = load_lm(run_dir / cfg["weights"]["backbone"], base)
        model = PeftModel.from_pretrained(model, run_dir / cfg["weights"]["adapter"]).eval()
        retr_dir = Path(cfg["retriever_run"])
        if not retr_dir.exists():  # a run tree moved as a whole: the retriever sits beside this run
            retr_dir = run_dir.parent / retr_dir.name
        retr, retr_len = load_retriever(retr_dir, data)
        return LlamaRecRanker(retr, retr_len, model, tok, letter_token_ids(tok), data.item_titles, mc.n_candidates,
                              mc.max_items, mc.max_title_words, mc.max_length)
    raise UserError(f"{run_dir} is a {cfg['model']} run, not an LLM run (load sequence models from checkpoint_best.pt)")
