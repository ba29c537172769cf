"""Causal depthwise 1-D convolution (the short conv in front of Mamba's SSM), full-sequence and one-step.

Glossary: x (B, D, L) channels-first input, D channels, L length; weight (D, K) one length-K filter per
channel (K = d_conv); bias (D,); conv_state (B, D, K): the last K inputs, oldest first.

    y[b, d, t] = bias[d] + sum_{k=0..K-1} weight[d, k] * x[b, d, t - (K-1) + k]      (x = 0 for t < 0)
    y = silu(y) if activation == "silu"

Paths (`kernels.resolve`): reference = `F.conv1d` with groups=D on the input left-padded by K-1 zeros (any
device; kernel="cpu" runs it too: there is no C++ conv); fused = `causal_conv1d_fn` / `causal_conv1d_update`
from the causal-conv1d package on CUDA.
The update is pure: it returns a new state instead of writing into the old one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import kernels

__all__ = ["causal_conv1d", "causal_conv1d_update"]

_ACTIVATIONS = (None, "silu", "swish")


def _check_activation(activation):
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {_ACTIVATIONS}, got {activation!r}")


def _activate(y: torch.Tensor, activation) -> torch.Tensor:
    return F.silu(y) if activation in ("silu", "swish") else y


def causal_conv1d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, activation=None,
                  kernel: kernels.KernelChoice = "auto") -> torch.Tensor:
    """Causal depthwise conv over time: x (B, D, L), weight (D, K), bias (D,) | None -> y (B, D, L).

    activation: None or "silu" (alias "swish"). Output position t sees inputs t-K+1 .. t only.
    """
    _check_activation(activation)
    if kernels.resolve(kernel, "causal_conv1d", x.device) == "fused":
        act = None if activation is None else "silu"
        return kernels.fused_kernels().causal_conv1d_fn(x, weight, bias, activation=act)
    Dm, K = weight.shape
    w = weight.to(x.dtype)[:, None, :]  # (D, 1, K)
    b = None if bias is None else bias.to(x.dtype)
    y = F.conv1d(F.pad(x, (K - 1, 0)), w, b, groups=Dm)  # (B, D, L)
    return _activate(y, activation)


def causal_conv1d_update(x_t: torch.Tensor, conv_state: torch.Tensor, weight: torch.Tensor,
                         bias: torch.Tensor | None = None, activation=None,
                         kernel: kernels.KernelChoice = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """One step: x_t (B, D), conv_state (B, D, K) -> (y_t (B, D), new_conv_state (B, D, K)).

    new_conv_state = [conv_state[..., 1:], x_t] (shift the window left, append x_t); y_t = that window . weight
    + bias, then the activation. Pure: `conv_state` is not modified (the fused kernel runs on a copy).
    """
    _check_activation(activation)
    if kernels.resolve(kernel, "causal_conv1d_update", x_t.device) == "fused":
        new_state = conv_state.clone()
        act = None if activation is None else "silu"
        y_t = kernels.fused_kernels().causal_conv1d_update(x_t, new_state, weight, bias, act)
        return y_t, new_state
    new_state = torch.cat([conv_state[..., 1:], x_t[..., None].to(conv_state.dtype)], dim=-1)  # (B, D, K)
    y_t = (new_state * weight.to(new_state.dtype)).sum(-1)  # (B, D)
    if bias is not None:
        y_t = y_t + bias.to(y_t.dtype)
    return _activate(y_t, activation).to(x_t.dtype), new_state
