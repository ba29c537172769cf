"""Streaming inference: keep a per-user state so that a new interaction updates it and rescoring costs O(1) in
the history length (SSMs, LRU, GRU), or O(L) with a key/value cache (SASRec with left-anchored positions),
instead of re-encoding the whole history, O(L) for a recurrence and O(L^2) for attention.

    state = prefill(model, history)          # once per user (or restored from a store)
    h, state = update(model, state, item)    # per new event: (B,) item ids -> (B, D) read-out, new state
    scores = model.score(h)                  # (B, n_items + 1)

`update`'s read-out equals `model.readout(history + [item])` (tests/unit/test_streaming.py). Which family a
model belongs to is decided by what it offers: `allocate_inference_state` + `step` (Mamba4Rec, 2Mamba4Rec,
LRURec, GRU4Rec), or a causal transformer with `positions="left"` (SASRec's key/value cache). Bidirectional
models (Hydra4Rec, BERT4Rec) have no streaming form: a new item changes every position's output.

Glossary: B users, L history length, D = d_model, H heads, P = D / H head width; K, V the cached keys and
values per layer, (B, H, t, P) after t events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .models.base import SequentialModel


class NotStreamable(ValueError):
    """The model has no streaming form (bidirectional) or is configured so that it cannot cache."""


@dataclass
class KVCache:
    """Per layer, keys and values of every event so far: k[i], v[i] (B, H, t, P); t = events so far."""

    k: list[torch.Tensor] = field(default_factory=list)
    v: list[torch.Tensor] = field(default_factory=list)
    t: int = 0


def kind(model: SequentialModel) -> str:
    """"recurrent", "kv" or raise NotStreamable."""
    if model.bidirectional:
        raise NotStreamable(f"{model.name} is bidirectional: a new item changes every position, nothing to cache")
    if hasattr(model, "step") and hasattr(model, "allocate_inference_state"):
        return "recurrent"
    if hasattr(model, "layers") and hasattr(model, "pos_emb"):
        if getattr(model.config, "positions", "right") != "left":
            raise NotStreamable(f"{model.name} uses right-anchored positions: every new event shifts every position, "
                                "so keys and values cannot be cached; build it with positions='left'")
        return "kv"
    raise NotStreamable(f"{model.name} has no recurrent step and is not a causal transformer")


def _attn_step(layer, x: torch.Tensor, cache: KVCache, i: int) -> torch.Tensor:
    """One new position through one transformer layer, appending its key and value. x (B, D) -> (B, D)."""
    attn = layer.attn
    B, D = x.shape
    H = attn.n_heads
    P = D // H
    inp = layer.norm1(x) if layer.norm_first else x
    q, k, v = attn.qkv(inp).view(B, 3, H, P).unbind(1)  # (B, H, P) each
    if len(cache.k) <= i:
        cache.k.append(k.unsqueeze(2))
        cache.v.append(v.unsqueeze(2))
    else:
        cache.k[i] = torch.cat([cache.k[i], k.unsqueeze(2)], dim=2)  # (B, H, t, P)
        cache.v[i] = torch.cat([cache.v[i], v.unsqueeze(2)], dim=2)
    w = torch.softmax(torch.einsum("bhp,bhtp->bht", q, cache.k[i]) / math.sqrt(P), dim=-1)  # (B, H, t)
    a = attn.out(torch.einsum("bht,bhtp->bhp", w, cache.v[i]).reshape(B, D))
    if layer.norm_first:
        x = x + a
        return x + layer.ffn(layer.norm2(x))
    x = layer.norm1(x + a)
    return layer.norm2(x + layer.ffn(x))


def _kv_step(model, item_t: torch.Tensor, cache: KVCache) -> tuple[torch.Tensor, KVCache]:
    if cache.t >= model.max_len:
        raise NotStreamable(f"history reached max_len={model.max_len}: the position table has no row {cache.t}")
    x = model.item_emb(item_t) + model.pos_emb.weight[cache.t]  # (B, D): left-anchored position t
    if not model.config.norm_first:
        x = model.norm(x)
    for i, layer in enumerate(model.layers):
        x = _attn_step(layer, x, cache, i)
    cache.t += 1
    return (model.norm(x) if model.config.norm_first else x), cache


def fused_stepper(model):
    """The model's packed C++ step (ssm/fused_step.py), cached on the model and rebuilt when its weights change
    in place (optimiser steps and load_state_dict bump the tensors' version counters; assigning a new Parameter
    object is not seen: call `forget_fused(model)` after doing that). None when it does not apply or does not
    build. The check costs a few microseconds: the parameter list is cached with the packed weights."""
    from .ssm import fused_step

    if model.training:
        return None
    cached = getattr(model, "_ssmrec_fused_step", None)
    if cached is not None:
        params, key, stepper = cached
        if (params[0].data_ptr(), *(p._version for p in params)) == key:  # .to() / .double() move the storage
            return stepper
    params = list(model.parameters())
    ok = fused_step.supports(model) and fused_step.available()
    stepper = fused_step.FusedStep(model) if ok else None
    # a plain attribute (not a submodule or buffer), so state_dict and .to() ignore it
    key = (params[0].data_ptr(), *(p._version for p in params))
    object.__setattr__(model, "_ssmrec_fused_step", (params, key, stepper))
    return stepper


def forget_fused(model) -> None:
    """Drop the cached fused step (after replacing Parameter objects or moving the model to another device)."""
    if hasattr(model, "_ssmrec_fused_step"):
        object.__delattr__(model, "_ssmrec_fused_step")


@torch.no_grad()
def update(model: SequentialModel, state, item_t: torch.Tensor, fused: bool | None = None):
    """One new event per user: item_t (B,) -> (read-out h (B, D), new state). Model in eval mode.

    fused: None = the C++ step when it applies (Mamba / Mamba2 recommenders, CPU, float32, eval) and builds, else
    the Python step; True = require it (error if it does not apply); False = the Python step. Same results
    (tests/unit/test_streaming.py)."""
    if kind(model) == "recurrent":
        if fused is not False:
            stepper = fused_stepper(model)
            if stepper is not None:
                return stepper.update(state, item_t)
            if fused:
                from .ssm import fused_step

                raise NotStreamable(f"{model.name}: no fused step ({fused_step.unavailable_reason() or 'unsupported'})")
        return model.step(item_t, state)
    return _kv_step(model, item_t, state)


@torch.no_grad()
def prefill(model: SequentialModel, history: torch.Tensor):
    """Build the state from full histories (B, L) (no padding; equal lengths), one event at a time.

    Returns (h after the last event (B, D), state). Costs O(L) steps once per user; a deployment stores the state.
    """
    if kind(model) == "recurrent":
        state = model.allocate_inference_state(history.shape[0])
    else:
        state = KVCache()
    h = None
    for t in range(history.shape[1]):
        h, state = update(model, state, history[:, t])
    return h, state


def state_bytes(state) -> int:
    """Memory held per batch by a streaming state (tensors inside lists / dataclasses)."""
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, (list, tuple)):
        return sum(state_bytes(s) for s in state)
    if hasattr(state, "__dataclass_fields__"):
        return sum(state_bytes(getattr(state, f)) for f in state.__dataclass_fields__)
    return 0


def reencode(model: SequentialModel, history: torch.Tensor) -> torch.Tensor:
    """The no-state baseline: run the whole history again. history (B, L) -> read-out (B, D)."""
    lengths = torch.full((history.shape[0],), history.shape[1], dtype=torch.long, device=history.device)
    return model.readout(history, lengths)


def check_equal(model: SequentialModel, history: torch.Tensor, k: int = 3, atol: float = 1e-4) -> float:
    """max |streaming read-out - full forward read-out| over k events after a prefill of history[:, :-k]."""
    model.eval()
    _, state = prefill(model, history[:, :-k])
    worst = 0.0
    for j in range(history.shape[1] - k, history.shape[1]):
        h, state = update(model, state, history[:, j])
        with torch.no_grad():
            want = reencode(model, history[:, : j + 1])
        worst = max(worst, float((h - want).abs().max()))
    return worst


__all__ = ["KVCache", "NotStreamable", "check_equal", "forget_fused", "fused_stepper", "kind", "prefill", "reencode", "state_bytes",
           "update"]
