"""Supervised fine-tuning of a causal LM on (prompt, target) text pairs: loss on the target tokens only.

For one pair, x = tokens(prompt) ++ tokens(target), labels = [-100] * |prompt| ++ tokens(target); the model's
causal-LM loss is the mean next-token cross-entropy over the labelled positions:
    L = - 1/|T| sum_{t in target} log p(x_t | x_<t)
Batches are RIGHT-padded (pads come after the text, so a causal model never reads them; their labels are -100).
Prompts longer than `max_length` tokens are cut from the left (the oldest history goes first).
"""

from __future__ import annotations

import math
import time
from typing import Callable, Sequence

import numpy as np
import torch


def encode_pairs(tokenizer, pairs: Sequence[tuple[str, str]], max_length: int) -> list[tuple[list[int], list[int]]]:
    """-> per pair (input ids, labels) as lists, prompt cut from the left so the whole fits max_length."""
    out = []
    for prompt, target in pairs:
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        t = tokenizer(target, add_special_tokens=False)["input_ids"][: max_length // 2]
        p = p[-(max_length - len(t)):]
        out.append((p + t, [-100] * len(p) + t))
    return out


def collate(encoded: Sequence[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """-> input_ids (B, L), attention_mask (B, L), labels (B, L) right-padded; lengths (B,)."""
    width = max(len(x) for x, _ in encoded)
    ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    lab = torch.full((len(encoded), width), -100, dtype=torch.long)
    att = torch.zeros((len(encoded), width), dtype=torch.long)
    for b, (x, y) in enumerate(encoded):
        ids[b, : len(x)] = torch.tensor(x)
        lab[b, : len(y)] = torch.tensor(y)
        att[b, : len(x)] = 1
    return {"input_ids": ids, "attention_mask": att, "labels": lab,
            "lengths": torch.tensor([len(x) for x, _ in encoded])}


def finetune(model, tokenizer, pairs: Sequence[tuple[str, str]], *, epochs: int = 1, lr: float = 1e-3,
             batch_size: int = 32, max_length: int = 256, seed: int = 0, max_steps_per_epoch: int = 0,
             on_epoch: Callable[[int, float], None] | None = None) -> list[dict]:
    """AdamW on the trainable parameters (requires_grad) of `model`; returns one log record per epoch.

    `on_epoch(epoch, mean_loss)` runs after each epoch (validation, checkpointing of the best state).
    """
    enc = encode_pairs(tokenizer, pairs, max_length)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    rng = np.random.default_rng(seed)
    logs = []
    for epoch in range(1, epochs + 1):
        model.train()
        order = rng.permutation(len(enc))
        losses, t0 = [], time.perf_counter()
        for step, start in enumerate(range(0, len(order), batch_size)):
            if max_steps_per_epoch and step >= max_steps_per_epoch:
                break
            batch = collate([enc[i] for i in order[start: start + batch_size]], tokenizer.pad_token_id)
            out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
            if not math.isfinite(float(out.loss.detach())):
                raise FloatingPointError(f"non-finite LM loss at epoch {epoch} step {step}")
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            losses.append(float(out.loss.detach()))
        rec = {"epoch": epoch, "loss": float(np.mean(losses)) if losses else float("nan"),
               "train_seconds": time.perf_counter() - t0, "steps": len(losses)}
        model.eval()
        if on_epoch is not None:
            on_epoch(epoch, rec["loss"])
        logs.append(rec)
    return logs
