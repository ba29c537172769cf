"""A fused CPU streaming step for the SSM recommenders (Mamba4Rec, 2Mamba4Rec): one C++ call per new event.
("Fused" as in many ops in one call: this is the kernel="cpu" path, not the CUDA kernels of kernel="fused".)

    stepper = FusedStep(model)              # packs the weights once (eval-mode inference; rebuild after training)
    h, state = stepper.update(state, item)  # same contract and result as streaming.update(model, state, item)

Why: the Python step (`SSMRec.step`) is about 30 small torch ops per layer. At batch 1 each costs a few
microseconds of dispatch for a few thousand FLOPs, so one event costs ~0.2 ms whatever the model does. The C++
kernel (`csrc/stream_step_cpu.cpp`) runs the same maths as plain loops over one packed float32 buffer: item
embedding + LayerNorm, then per layer the block step (Mamba: conv window, x_proj, dt, h = exp(dt A) h + dt B x,
y = C.h + D x gated by silu(z), out_proj; Mamba2: the same per head with a scalar decay, gated RMSNorm), the
optional residual, LayerNorm and the PFFN. The state is the Python step's (`MambaInferenceState` per layer for
Mamba; (conv_state, ssm_state) for Mamba2), so the two paths interoperate: prefill with either, update with either.

Glossary: d = d_model, E = d_inner, N = d_state, R = dt_rank, K = d_conv, H heads, P = headdim, G = ngroups,
A = -exp(A_log) (stored precomputed), layout of `meta` = the enum in the C++ file (header, then 32 ints per layer).
This is the "cpu" path of the op "stream_step" in `ssm/kernels.py`: `streaming.update` runs it when the model's
kernel switch resolves to "cpu" there (kernel="cpu", or "auto" on CPU when the extension builds and
`unsupported_reason(model)` is None), and the Python step otherwise. Build: `ssm/cpu_ext.py` (JIT, the scan's
flags and cache), reached through `kernels.cpu_kernel("stream_step")`.
"""

from __future__ import annotations

import torch

from . import kernels

_FIELDS = ["KIND", "E", "N", "R", "K", "H", "P", "G", "CONV_DIM", "IN_W", "IN_B", "CONV_W", "CONV_B", "XPROJ_W",
           "DTPROJ_W", "DT_B", "A", "D", "NORM_W", "OUT_W", "OUT_B", "LN_W", "LN_B", "FF_W1", "FF_B1", "FF_W2",
           "FF_B2", "FF_LN_W", "FF_LN_B", "IN_ROWS"]


def available() -> bool:
    """True when the C++ step builds (or is cached) on this machine (builds it on the first call)."""
    return unavailable_reason() is None


def unavailable_reason() -> str | None:
    """None when the C++ step loads, else why not."""
    return kernels.cpu_unavailable_reason("stream_step")


def unsupported_reason(model) -> str | None:
    """None when the C++ step covers `model` (Mamba4Rec / 2Mamba4Rec, eval mode, CPU, float32, LayerNorm eps
    1e-5, Mamba2's gate-then-norm over d_inner / ngroups groups), else why not."""
    from .mamba import Mamba
    from .mamba2 import Mamba2

    name = getattr(model, "name", type(model).__name__)
    layers = getattr(model, "layers", None)
    if not layers or not hasattr(model, "step") or not all(isinstance(getattr(layer, "block", None), (Mamba, Mamba2))
                                                            for layer in layers):
        return f"the C++ streaming step covers Mamba4Rec / 2Mamba4Rec; {name} is neither"
    if model.training:
        return f"{name} is in training mode (the C++ step packs eval-mode weights once; call model.eval())"
    w = model.item_emb.weight
    if w.device.type != "cpu" or w.dtype != torch.float32:
        return f"the C++ streaming step takes float32 CPU weights, {name} has {w.dtype} on {w.device.type}"
    for eps in [model.emb_norm.eps] + [m.eps for layer in layers for m in (layer.norm, layer.ffn.norm)]:
        if abs(eps - 1e-5) > 1e-12:
            return f"the C++ streaming step assumes LayerNorm eps 1e-5, {name} has {eps}"
    for layer in layers:
        b = layer.block
        if isinstance(b, Mamba2) and (b.norm.norm_before_gate or b.norm.group_size != b.d_inner // b.ngroups):
            return "the C++ streaming step assumes Mamba2's gate-then-norm over d_inner / ngroups groups"
    return None


def supports(model) -> bool:
    """True when the C++ step covers `model` (`unsupported_reason` is None)."""
    return unsupported_reason(model) is None


class _Packer:
    def __init__(self) -> None:
        self.parts: list[torch.Tensor] = []
        self.size = 0

    def add(self, t: torch.Tensor | None) -> int:
        if t is None:
            return -1
        off = self.size
        flat = t.detach().float().reshape(-1)
        self.parts.append(flat)
        self.size += flat.numel()
        return off

    def tensor(self) -> torch.Tensor:
        return torch.cat(self.parts).contiguous()


class FusedStep:
    """The model's weights packed for the C++ step. Build it from a model in eval mode; rebuild when weights change."""

    def __init__(self, model) -> None:
        from .mamba import Mamba

        why = unsupported_reason(model)
        if why is not None:
            raise ValueError(why)
        self.module = kernels.cpu_kernel("stream_step")
        pk = _Packer()
        layer0 = model.layers[0]
        d = model.d_model
        d_ff = layer0.ffn.w1.out_features
        head = [len(model.layers), d, d_ff, int(layer0.residual), self.module.layer_ints,
                pk.add(model.item_emb.weight), pk.add(model.emb_norm.weight), pk.add(model.emb_norm.bias)]
        blocks = []
        for layer in model.layers:
            b = layer.block
            f = dict.fromkeys(_FIELDS, 0)
            f["K"] = b.d_conv
            f["E"], f["N"] = b.d_inner, b.d_state
            f["IN_W"], f["IN_B"] = pk.add(b.in_proj.weight), pk.add(b.in_proj.bias)
            f["CONV_W"], f["CONV_B"] = pk.add(b.conv1d.weight[:, 0, :]), pk.add(b.conv1d.bias)
            f["OUT_W"], f["OUT_B"] = pk.add(b.out_proj.weight), pk.add(b.out_proj.bias)
            f["A"] = pk.add(-torch.exp(b.A_log.float()))  # (E, N) Mamba, (H,) Mamba2
            f["D"] = pk.add(b.D)
            f["IN_ROWS"] = b.in_proj.out_features
            if isinstance(b, Mamba):
                f["KIND"], f["R"] = 0, b.dt_rank
                f["XPROJ_W"], f["DTPROJ_W"] = pk.add(b.x_proj.weight), pk.add(b.dt_proj.weight)
                f["DT_B"], f["NORM_W"] = pk.add(b.dt_proj.bias), -1
            else:
                f["KIND"], f["H"], f["P"], f["G"], f["CONV_DIM"] = 1, b.nheads, b.headdim, b.ngroups, b.conv_dim
                f["DT_B"], f["NORM_W"] = pk.add(b.dt_bias), pk.add(b.norm.weight)
                f["XPROJ_W"] = f["DTPROJ_W"] = -1
            f["LN_W"], f["LN_B"] = pk.add(layer.norm.weight), pk.add(layer.norm.bias)
            f["FF_W1"], f["FF_B1"] = pk.add(layer.ffn.w1.weight), pk.add(layer.ffn.w1.bias)
            f["FF_W2"], f["FF_B2"] = pk.add(layer.ffn.w2.weight), pk.add(layer.ffn.w2.bias)
            f["FF_LN_W"], f["FF_LN_B"] = pk.add(layer.ffn.norm.weight), pk.add(layer.ffn.norm.bias)
            row = [f[k] for k in _FIELDS]
            blocks += row + [0] * (self.module.layer_ints - len(row))
        self.flat = pk.tensor()  # (total parameters,)
        self.meta = torch.tensor(head + blocks, dtype=torch.int64)
        self.n_layers = len(model.layers)
        self.mamba = isinstance(layer0.block, Mamba)

    @torch.no_grad()
    def update(self, state: list, item_t: torch.Tensor) -> tuple[torch.Tensor, list]:
        """item_t (B,) int64, state (the Python step's, one entry per layer) -> (h (B, d), new state). Pure."""
        from .mamba import MambaInferenceState

        conv = [s.conv_state if self.mamba else s[0] for s in state]
        ssm = [s.ssm_state if self.mamba else s[1] for s in state]
        out = self.module.model_step(item_t.long(), self.flat, self.meta, conv, ssm)
        h, n = out[0], self.n_layers
        if self.mamba:
            return h, [MambaInferenceState(c, s) for c, s in zip(out[1:1 + n], out[1 + n:])]
        return h, list(zip(out[1:1 + n], out[1 + n:]))


__all__ = ["FusedStep", "available", "supports", "unavailable_reason", "unsupported_reason"]
