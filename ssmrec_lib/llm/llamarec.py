"""LlamaRec (Yue et al. 2023): two-stage ranking. LRURec retrieves, an LLM ranks with a verbalizer.

Glossary
    C = 20          candidates per user (LRURec's top 20, history masked as LRURec / LlamaRec evaluate)
    letters         A..T label candidates 1..C in the prompt (prompts.ranking_prompt)
    z (B, V)        the LM's next-token logits at the answer position (the last prompt token)
    s (B, C)        verbalizer scores s_c = z[letter_id(c)]; the ranked list = candidates sorted by s, descending
Stages:
    1. retrieval: candidates = top-C of LRURec.score(LRURec.readout(history)) with seen items masked
    2. ranking: the LLM reads the history titles and the C lettered candidate titles and scores the letters
Fine-tuning (LoRA, peft): cross-entropy of the target's letter at the answer position over the whole vocabulary,
on training-split examples whose target the retriever found (LlamaRec trains only on those); only the adapter
matrices (r x d) train, the backbone stays frozen. A from-scratch backbone is first trained fully on the
title corpus (next-title pairs of the training split), since LoRA on frozen random weights would learn little:
runs say so in config.json.
Misses: a user whose target is not among the C candidates cannot be ranked to it: the ranked list (C items) does
not contain the target, so every metric counts 0 for that user (the LlamaRec paper's rule).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..checkpoint import load_checkpoint
from ..config import from_dict
from ..data.batching import pad_left
from ..errors import UnknownNameError, UserError
from ..profiles import LLAMAREC_PROFILES


@torch.no_grad()
def retrieve_candidates(retriever, histories: Sequence[np.ndarray], max_len: int, n: int = 20,
                        batch_size: int = 256) -> np.ndarray:
    """-> (U, n) item ids, best first: top-n of retriever scores with the user's history masked (-inf)."""
    retriever.eval()
    out = np.zeros((len(histories), n), dtype=np.int64)
    for start in range(0, len(histories), batch_size):
        hs = histories[start: start + batch_size]
        seq, lens = pad_left(list(hs), max_len)
        scores = retriever.score(retriever.readout(seq, lens)).float()  # (b, n_items + 1)
        full, _ = pad_left(list(hs), max(1, max(len(h) for h in hs)))
        scores = scores.scatter(1, full, float("-inf"))  # seen items (and padding column 0) masked
        scores[:, 0] = float("-inf")
        out[start: start + len(hs)] = scores.topk(n, dim=1).indices.numpy()
    return out


def last_token_logits(model, tokenizer, prompts: Sequence[str], max_length: int = 512) -> torch.Tensor:
    """prompts (B,) -> logits (B, V) at each prompt's last token (right-padded batch, prompt cut from the left)."""
    enc = [tokenizer(p, add_special_tokens=False)["input_ids"][-max_length:] for p in prompts]
    width = max(len(e) for e in enc)
    ids = torch.full((len(enc), width), tokenizer.pad_token_id, dtype=torch.long)
    att = torch.zeros_like(ids)
    for b, e in enumerate(enc):
        ids[b, : len(e)] = torch.tensor(e)
        att[b, : len(e)] = 1
    logits = model(input_ids=ids, attention_mask=att).logits  # (B, L, V)
    last = torch.tensor([len(e) - 1 for e in enc])
    return logits[torch.arange(len(enc)), last]  # (B, V)


def verbalizer_scores(logits: torch.Tensor, letter_ids: Sequence[int], n_candidates: int) -> torch.Tensor:
    """logits (B, V) -> s (B, C): the logit of each candidate's letter token."""
    return logits[:, torch.as_tensor(list(letter_ids)[:n_candidates])]


def rank_by_scores(scores: torch.Tensor, candidates: np.ndarray) -> list[list[int]]:
    """s (B, C), candidates (B, C) item ids -> per user the candidates sorted by s descending (stable)."""
    order = torch.argsort(scores, dim=1, descending=True, stable=True).numpy()  # (B, C)
    return [candidates[b, order[b]].tolist() for b in range(len(candidates))]


def add_lora(model, r: int = 8, alpha: int = 16, dropout: float = 0.05, targets: Sequence[str] = ("q_proj", "v_proj")):
    """Wrap `model` with LoRA adapters W + (alpha / r) B A on `targets` (peft); base weights frozen."""
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets), bias="none",
                     task_type="CAUSAL_LM")
    return get_peft_model(model, cfg)


def lora_targets_for(model) -> list[str]:
    """Attention projections to adapt, by architecture (Llama: q/v, GPT-2: c_attn, Mamba: in/x projections)."""
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    for cand in (["q_proj", "v_proj"], ["c_attn"], ["in_proj", "x_proj"]):
        if all(c in names for c in cand):
            return cand
    raise ValueError(f"no known LoRA target modules in {type(model).__name__}")


class LlamaRecRanker:
    """Both stages for inference: `rank_lists(histories) -> per user the C candidates, best first`.

    retriever: an eval-mode LRURec (readout/score) reading the last `retr_len` items; model: the (LoRA-wrapped)
    causal LM; letters: token ids of A..T (backbones.letter_token_ids). Used by the run, by the reloaded run
    (weights.load_run_recommender) and by `bench latency`.
    """

    def __init__(self, retriever, retr_len: int, model, tokenizer, letters: Sequence[int], titles: Sequence[str],
                 n_candidates: int = 20, max_items: int = 10, max_title_words: int = 8, max_length: int = 512):
        self.retriever, self.retr_len, self.model, self.tokenizer = retriever, retr_len, model, tokenizer
        self.letters, self.titles, self.C = list(letters), titles, n_candidates
        self.max_items, self.max_title_words, self.max_length = max_items, max_title_words, max_length

    def prompt(self, history: Sequence[int], candidates: Sequence[int]) -> str:
        from .prompts import ranking_prompt

        return ranking_prompt(history, candidates, self.titles, self.max_items, self.max_title_words)

    @torch.no_grad()
    def rank_lists(self, histories: Sequence[np.ndarray], batch: int = 16) -> list[list[int]]:
        """histories (U,) -> U lists of C item ids: 1. retrieve C candidates, 2. sort them by verbalizer score."""
        self.model.eval()
        cand = retrieve_candidates(self.retriever, histories, self.retr_len, self.C)  # (U, C)
        out: list[list[int]] = []
        for st in range(0, len(histories), batch):
            prompts = [self.prompt(h, c) for h, c in zip(histories[st: st + batch], cand[st: st + batch])]
            logits = last_token_logits(self.model, self.tokenizer, prompts, self.max_length)  # (b, V)
            out += rank_by_scores(verbalizer_scores(logits, self.letters, self.C).float(), cand[st: st + batch])
        return out

    def recommend(self, history: Sequence[int]) -> list[int]:
        return self.rank_lists([np.asarray(history)])[0]


@dataclass(frozen=True)
class LlamaRecConfig:
    backbone: str = "llama-tiny"  # llama-tiny / gpt2-tiny / mamba-tiny (from scratch), a local folder, a hub name
    d_model: int = 64  # tiny backbones only
    n_layers: int = 2
    retriever_run: str = ""  # folder of a finished lrurec run; "" = train one now (retriever_profile)
    retriever_profile: str = "quick"
    n_candidates: int = 20  # C (LlamaRec: 20, letters A..T)
    lora_r: int = 8  # LlamaRec: r = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    pretrain_epochs: int = 2  # full LM epochs on next-title pairs, from-scratch backbones only
    epochs: int = 3  # LoRA epochs on the ranking task
    lr: float = 1e-3
    batch_size: int = 16
    max_items: int = 10  # history titles in the prompt
    max_title_words: int = 8
    max_length: int = 512
    max_train_users: int = 0  # 0 = all
    max_eval_users: int = 0  # 0 = all; else a seeded subset



def load_retriever(run_dir: Path, data):
    """A finished lrurec run folder -> (eval-mode LRURec with its best checkpoint, its max_len)."""
    from ..models.registry import build_model

    conf = json.loads((Path(run_dir) / "config.json").read_text())
    if conf["model"] != "lrurec":
        raise UserError(f"retriever_run {run_dir} is a {conf['model']} run, not lrurec")
    max_len = conf["train_config"]["max_len"]
    net = build_model("lrurec", data.n_items, max_len, conf["model_config"])
    net.load_state_dict(load_checkpoint(Path(run_dir) / "checkpoint_best.pt", map_location="cpu")["model"])
    return net.eval(), max_len


def llamarec_config(profile: str, overrides: dict[str, Any]) -> LlamaRecConfig:
    """The profile's LlamaRec settings (profiles.LLAMAREC_PROFILES) with the overrides on top (raises on an unknown profile or key)."""
    if profile not in LLAMAREC_PROFILES:
        raise UnknownNameError(f"unknown profile {profile!r}; available: {', '.join(LLAMAREC_PROFILES)}")
    return from_dict(LlamaRecConfig, {**LLAMAREC_PROFILES[profile], **overrides})
