"""GPT4Rec (Li et al. 2023) and MamRec (the same pipeline on a Mamba language model).

Pipeline for one user (history h_1..h_n, item ids):
    1. prompt = titles of the last `max_items` items, most recent last (prompts.history_prompt)
    2. the causal LM generates k queries by beam search (num_beams = num_return_sequences = k, greedy beams, no
       sampling): the k most probable continuations, i.e. k "next titles" the model imagines
    3. BM25 over all item titles retrieves `per_query_k` items per query (bm25.TitleIndex)
    4. the k result lists merge into one top-K list (ranking.merge_round_robin; `merge="score_sum"` optional)
Fine-tuning: (history titles -> next title) pairs from the training split only (prompts.next_title_examples),
loss on the target title (lm_train.finetune). A tiny backbone is trained from scratch this way: its whole
knowledge of language is the title corpus of this dataset's training sequences.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

import torch

from ..config import from_dict
from ..errors import UnknownNameError
from ..profiles import GEN_PROFILES
from .backbones import Backbone, clean_query, load_backbone
from .bm25 import TitleIndex
from .prompts import history_prompt
from .ranking import merge_round_robin, merge_score_sum


@dataclass(frozen=True)
class GPT4RecConfig:
    backbone: str = "gpt2-tiny"  # gpt2-tiny | mamba-tiny | llama-tiny (from scratch) | local folder | hub name
    d_model: int = 64  # tiny backbones only
    n_layers: int = 2  # tiny backbones only
    n_queries: int = 5  # k: beams = returned queries (GPT4Rec's paper uses several; 5 here)
    max_new_tokens: int = 16  # query length cap (tokens)
    per_query_k: int = 20  # BM25 results kept per query
    top_k: int = 20  # length of the merged list (= the largest metric K)
    merge: Literal["round_robin", "score_sum"] = "round_robin"
    exclude_history: bool = False  # drop already-seen items from the list (False = the project's protocol)
    max_items: int = 10  # history titles in the prompt
    max_title_words: int = 12
    max_length: int = 256  # tokens of prompt + target during fine-tuning
    epochs: int = 3
    lr: float = 1e-3
    batch_size: int = 32
    examples_per_user: int = 4  # (history -> next) pairs per training sequence per fine-tuning set
    max_steps_per_epoch: int = 0  # 0 = all
    max_train_users: int = 0  # 0 = all training sequences
    max_eval_users: int = 0  # 0 = all users; else a seeded subset (written in the protocol)


DEFAULT_BACKBONE = {"gpt4rec": "gpt2-tiny", "mamrec": "mamba-tiny"}


def gen_config(model: str, profile: str, overrides: dict[str, Any]) -> GPT4RecConfig:
    """GPT4Rec / MamRec settings: the model's default backbone, the profile's budget (profiles.GEN_PROFILES), then
    the overrides (raises on an unknown profile or key)."""
    if profile not in GEN_PROFILES:
        raise UnknownNameError(f"unknown profile {profile!r}; available: {', '.join(GEN_PROFILES)}")
    return from_dict(GPT4RecConfig, {"backbone": DEFAULT_BACKBONE[model], **GEN_PROFILES[profile], **overrides})


class GPT4Rec:
    """Generative retrieval recommender; `recommend(history) -> ranked item ids (<= top_k,)`."""

    def __init__(self, cfg: GPT4RecConfig, titles: Sequence[str], backbone: Backbone | None = None) -> None:
        self.cfg = cfg
        self.titles = list(titles)
        self.backbone = backbone or load_backbone(cfg.backbone, self.titles[1:], d_model=cfg.d_model,
                                                  n_layers=cfg.n_layers)
        self.index = TitleIndex(self.titles)

    @property
    def model(self):
        return self.backbone.model

    @property
    def tokenizer(self):
        return self.backbone.tokenizer

    def marks(self) -> dict[str, str]:
        """Prompt markers from the tokenizer ([BOS]/[SEP] for tiny backbones; a pretrained one's own, or '|')."""
        tok = self.tokenizer
        return {"bos": tok.bos_token or "", "sep": getattr(tok, "sep_token", None) or "|"}

    def prompt(self, history: Sequence[int]) -> str:
        return history_prompt(history, self.titles, self.cfg.max_items, self.cfg.max_title_words, **self.marks())

    @torch.no_grad()
    def generate_queries(self, history: Sequence[int]) -> list[str]:
        """-> k query strings (beam order, most probable first), from one beam search at batch 1."""
        tok = self.tokenizer
        ids = tok(self.prompt(history), add_special_tokens=False)["input_ids"][-(self.cfg.max_length - 16):]
        x = torch.tensor([ids])  # (1, L)
        self.model.eval()
        out = self.model.generate(input_ids=x, attention_mask=torch.ones_like(x), num_beams=self.cfg.n_queries,
                                  num_return_sequences=self.cfg.n_queries, do_sample=False,
                                  max_new_tokens=self.cfg.max_new_tokens, pad_token_id=tok.pad_token_id,
                                  eos_token_id=tok.eos_token_id, early_stopping=True)  # (k, L + new)
        return [clean_query(tok.decode(seq[x.shape[1]:], skip_special_tokens=True)) for seq in out]

    def retrieve(self, queries: Sequence[str], history: Sequence[int] = ()) -> list[int]:
        """Queries (k,) -> merged ranked list of item ids (<= top_k,)."""
        res = self.index.search_many(list(queries), self.cfg.per_query_k)
        exclude = list(history) if self.cfg.exclude_history else []
        if self.cfg.merge == "round_robin":
            return merge_round_robin([ids for ids, _ in res], self.cfg.top_k, exclude)
        return merge_score_sum(res, self.cfg.top_k, exclude)

    def recommend(self, history: Sequence[int]) -> list[int]:
        return self.retrieve(self.generate_queries(history), history)
