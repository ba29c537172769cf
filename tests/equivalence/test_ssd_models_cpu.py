"""Whole models on the C++ SSD: 2Mamba4Rec and Hydra4Rec give the same scores and parameter gradients with
kernel="cpu" (the C++ recurrence) as with kernel="ref" (the chunked PyTorch maths), on a left-padded batch of
different lengths, in float64 (tight) and float32 (stated tolerance); the prefill state that streaming starts
from is the same too."""

from __future__ import annotations

import pytest
import torch

from ssmrec_lib.models.registry import build_model
from ssmrec_lib.ssm import cpu_ext

MODELS = ["mamba2rec", "hydra4rec"]


@pytest.fixture(autouse=True)
def cpp_calls(monkeypatch):
    """Skips without the C++ SSD; counts its calls (so "cpu" is seen to run it, not the PyTorch maths)."""
    if not cpu_ext.available("ssd"):
        pytest.skip(f"C++ SSD unavailable: {cpu_ext.build_info('ssd')}")
    calls = []
    real = cpu_ext.ssd_cpu
    monkeypatch.setattr(cpu_ext, "ssd_cpu", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def _pair(name, dtype, **over):
    models = []
    for kernel in ("ref", "cpu"):
        torch.manual_seed(0)
        m = build_model(name, n_items=40, max_len=30, overrides={"kernel": kernel, "d_state": 16, **over})
        models.append(m.to(dtype).eval())
    with torch.no_grad():  # off the init, so every term shows
        for p in models[0].parameters():
            p.add_(0.05 * torch.randn_like(p))
    models[1].load_state_dict(models[0].state_dict())
    return models


def _batch():
    lengths = torch.tensor([30, 9, 17, 1])
    seq = torch.randint(1, 41, (4, 30), generator=torch.Generator().manual_seed(3))
    return seq, lengths  # the models zero the ids left of L - lengths (base.py)


def _scores_and_grads(model, seq, lengths):
    model.zero_grad()
    out = model.score(model.readout(seq, lengths))  # (B, n_items + 1), column 0 is -inf
    out = out[:, 1:]
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64).to(out.dtype)
    (out * w).sum().backward()
    return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 2e-5)])
def test_cpu_kernel_equals_ref_scores_and_gradients(name, dtype, tol, cpp_calls):
    ref, cpu = _pair(name, dtype)
    seq, lengths = _batch()
    s_ref, g_ref = _scores_and_grads(ref, seq, lengths)
    assert not cpp_calls
    s_cpu, g_cpu = _scores_and_grads(cpu, seq, lengths)
    assert cpp_calls
    torch.testing.assert_close(s_cpu, s_ref, rtol=tol, atol=tol)
    assert set(g_cpu) == set(g_ref) and len(g_ref) > 5
    for n in g_ref:  # relative to each gradient's largest entry: parameter gradients differ in scale
        scale = g_ref[n].abs().max().clamp_min(1e-12)
        assert ((g_cpu[n] - g_ref[n]).abs().max() / scale).item() < tol * 10, n


def test_mamba2rec_ngroups_and_headdim_variant():
    ref, cpu = _pair("mamba2rec", torch.float64, headdim=16, ngroups=2)
    seq, lengths = _batch()
    s_ref, g_ref = _scores_and_grads(ref, seq, lengths)
    s_cpu, g_cpu = _scores_and_grads(cpu, seq, lengths)
    torch.testing.assert_close(s_cpu, s_ref, rtol=1e-10, atol=1e-10)
    for n in g_ref:
        torch.testing.assert_close(g_cpu[n], g_ref[n], rtol=1e-9, atol=1e-10, msg=n)


def test_mamba2_prefill_state_equals_ref():
    from ssmrec_lib.ssm.mamba2 import Mamba2

    blocks = []
    for kernel in ("ref", "cpu"):
        torch.manual_seed(0)
        blocks.append(Mamba2(64, d_state=16, headdim=32, chunk_size=8, kernel=kernel).double().eval())
    u = torch.randn(3, 21, 64, dtype=torch.float64)
    mask = torch.ones(3, 21, dtype=torch.bool)
    mask[1, :8] = False
    (y0, (c0, s0)), (y1, (c1, s1)) = (b.prefill(u, mask) for b in blocks)
    torch.testing.assert_close(y1, y0, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(c1, c0, rtol=0, atol=0)
    torch.testing.assert_close(s1, s0, rtol=1e-10, atol=1e-10)
