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
The recurrent step follows the model's kernel switch (`update`): "cpu" / "auto" on CPU run Mamba4Rec and
2Mamba4Rec through one C++ call per event (ssm/fused_step.py), "ref" and "fused" through `model.step`.

Glossary: B users, L history length, D = d_model, H heads, P = D / H head width; K, V the cached keys and
values per layer, (B, H, t, P) after t events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .models.base import SequentialModel
from .ssm import kernels


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


def model_kernel(model) -> str | None:
    """The model's kernel switch (`config.kernel`: "auto" | "ref" | "cpu" | "fused"), None for models without one."""
    return getattr(getattr(model, "config", None), "kernel", None)


@dataclass
class _StepCache:
    """What the streaming step needs to know about a model's weights, cached on the model per weight version
    (optimiser steps and load_state_dict bump the tensors' version counters; .to() / .double() move the storage)."""

    params: list                 # the parameter list (listing it costs more than the step itself at batch 1)
    key: tuple                   # (first storage pointer, every parameter's version)
    why_not_cpp: str | None      # why the C++ step cannot take the model, None when it can
    paths: dict = field(default_factory=dict)  # kernel choice -> kernels.resolve's path for "stream_step"
    stepper: object = None       # the packed FusedStep, built on first use


def _step_cache(model) -> _StepCache:
    """The model's _StepCache (eval mode; the C++ step packs eval-mode weights), rebuilt when its weights change."""
    cached = getattr(model, "_ssmrec_fused_step", None)
    if cached is not None and (cached.params[0].data_ptr(), *(p._version for p in cached.params)) == cached.key:
        return cached
    from .ssm import fused_step

    params = list(model.parameters())
    cached = _StepCache(params, (params[0].data_ptr(), *(p._version for p in params)),
                        fused_step.unsupported_reason(model))
    # a plain attribute (not a submodule or buffer), so state_dict and .to() ignore it
    object.__setattr__(model, "_ssmrec_fused_step", cached)
    return cached


def fused_stepper(model, kernel: kernels.KernelChoice | None = None):
    """The model's packed C++ step (ssm/fused_step.py) when `kernel` (default: the model's switch) resolves to
    "cpu" for the op "stream_step" of `ssm/kernels.py`, else None (the Python step runs).

    "cpu": the C++ step, or KernelUnavailable with the reason (not built, model not covered, training mode, not
    float32 on CPU); "auto": the C++ step on CPU when it builds and covers the model, else None; "ref": None
    (pure PyTorch, the extension is never loaded); "fused": None (the Python step, its ops on the CUDA kernels).
    The decision and the packed weights are cached on the model and redone when its weights change in place;
    assigning a new Parameter object is not seen: call `forget_fused(model)` after doing that. The check costs a
    few microseconds: the parameter list is cached with the packed weights."""
    kernel = model_kernel(model) if kernel is None else kernel
    if kernel is None or kernel == "ref":
        return None
    if model.training:  # never cached: the mode flips without touching the weights
        from .ssm import fused_step

        kernels.resolve(kernel, "stream_step", next(model.parameters()).device,
                        cpu_unsupported=fused_step.unsupported_reason(model))
        return None  # resolve raised for "cpu"; "auto" fell back to the Python step
    c = _step_cache(model)
    path = c.paths.get(kernel)
    if path is None:
        path = c.paths[kernel] = kernels.resolve(kernel, "stream_step", c.params[0].device,
                                                 cpu_unsupported=c.why_not_cpp)
    if path != "cpu":
        return None
    if c.stepper is None:
        from .ssm import fused_step

        c.stepper = fused_step.FusedStep(model)
    return c.stepper


def forget_fused(model) -> None:
    """Drop the cached fused step (after replacing Parameter objects or moving the model to another device)."""
    if hasattr(model, "_ssmrec_fused_step"):
        object.__delattr__(model, "_ssmrec_fused_step")


def _step_kernel(model, fused: bool | None) -> str | None:
    """The kernel choice for the streaming step: the model's switch, narrowed by `update`'s `fused` argument."""
    kernel = model_kernel(model)
    if fused is None:
        return kernel
    if not fused:
        return "ref"
    if kernel in ("ref", "fused"):
        raise kernels.KernelUnavailable(f"{model.name}: fused=True asks for the C++ streaming step, but the model's "
                                        f"kernel={kernel!r} rules it out (build it with kernel='cpu' or 'auto')")
    return "cpu"


@torch.no_grad()
def update(model: SequentialModel, state, item_t: torch.Tensor, fused: bool | None = None):
    """One new event per user: item_t (B,) -> (read-out h (B, D), new state). Model in eval mode.

    Recurrent models follow their kernel switch (`config.kernel`) for the whole step, as the op "stream_step" of
    `ssm/kernels.py`: "cpu" = the C++ step of ssm/fused_step.py (KernelUnavailable when it cannot run: not built,
    not Mamba4Rec / 2Mamba4Rec, training mode, not float32 on CPU); "auto" = the C++ step on CPU when it builds
    and covers the model, else the Python step (`model.step`); "ref" = the Python step in pure PyTorch (the C++
    extension is never loaded); "fused" = the Python step, its conv and state update on the CUDA kernels.
    fused: None = as the switch says; False = the Python step; True = require the C++ step (KernelUnavailable
    when the switch is "ref" / "fused" or the step cannot run). Same results (tests/unit/test_streaming.py)."""
    if kind(model) == "recurrent":
        kernel = _step_kernel(model, fused)
        stepper = None if kernel is None else fused_stepper(model, kernel)
        if stepper is not None:
            return stepper.update(state, item_t)
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


__all__ = ["KVCache", "NotStreamable", "check_equal", "forget_fused", "fused_stepper", "kind", "model_kernel",
           "prefill", "reencode", "state_bytes", "update"]
