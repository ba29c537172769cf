"""Causal conv (reference vs explicit loop, update vs full) and the Mamba block (shapes, params, padding, step)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ssmrec_lib.ssm import cpu_ext, kernels
from ssmrec_lib.ssm.conv import causal_conv1d, causal_conv1d_update
from ssmrec_lib.ssm.mamba import Mamba, MambaInferenceState


def conv_loop(x, weight, bias, activation):
    """y[b, d, t] = bias[d] + sum_k weight[d, k] x[b, d, t - (K-1) + k], zeros before t = 0."""
    Bsz, Dm, L = x.shape
    K = weight.shape[1]
    y = torch.zeros_like(x)
    for t in range(L):
        for k in range(K):
            s = t - (K - 1) + k
            if s >= 0:
                y[:, :, t] += weight[:, k] * x[:, :, s]
        if bias is not None:
            y[:, :, t] += bias
    return F.silu(y) if activation == "silu" else y


@pytest.mark.parametrize("activation", [None, "silu"])
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("L", [1, 3, 9])
def test_causal_conv_matches_loop(activation, with_bias, L):
    g = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(2, 5, L, generator=g), torch.randn(5, 4, generator=g), torch.randn(5, generator=g)
    bias = b if with_bias else None
    torch.testing.assert_close(causal_conv1d(x, w, bias, activation), conv_loop(x, w, bias, activation))


def test_causal_conv_update_loop_equals_full():
    g = torch.Generator().manual_seed(1)
    x, w, b = torch.randn(2, 5, 11, generator=g), torch.randn(5, 4, generator=g), torch.randn(5, generator=g)
    full = causal_conv1d(x, w, b, "silu")
    state = torch.zeros(2, 5, 4)
    for t in range(11):
        before = state.clone()
        y_t, new_state = causal_conv1d_update(x[:, :, t], state, w, b, "silu")
        torch.testing.assert_close(state, before)  # pure: the old state is untouched
        torch.testing.assert_close(y_t, full[:, :, t])
        state = new_state
    torch.testing.assert_close(state, x[:, :, -4:])


def test_conv_bad_activation_and_fused_on_cpu():
    x, w = torch.randn(1, 2, 3), torch.randn(2, 4)
    with pytest.raises(ValueError, match="activation"):
        causal_conv1d(x, w, None, "relu")
    with pytest.raises(kernels.KernelUnavailable, match="requirements-gpu"):
        causal_conv1d(x, w, None, kernel="fused")


# ---------------------------------------------------------------- Mamba block

def test_param_count_and_names():
    m = Mamba(d_model=64, d_state=32, d_conv=4, expand=2)
    assert sum(p.numel() for p in m.parameters()) == 38_784  # docs/measured_facts.md (mamba-ssm's Mamba at these sizes)
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert shapes == {"A_log": (128, 32), "D": (128,), "in_proj.weight": (256, 64), "conv1d.weight": (128, 1, 4),
                      "conv1d.bias": (128,), "x_proj.weight": (68, 128), "dt_proj.weight": (128, 4),
                      "dt_proj.bias": (128,), "out_proj.weight": (64, 128)}


def test_init():
    torch.manual_seed(0)
    m = Mamba(d_model=32, d_state=8, dt_min=1e-3, dt_max=0.1)
    dt = F.softplus(m.dt_proj.bias)
    assert dt.min() >= 1e-3 * 0.999 and dt.max() <= 0.1 * 1.001
    torch.testing.assert_close(-torch.exp(m.A_log[0]), -torch.arange(1.0, 9.0))
    assert torch.all(Mamba(d_model=32, dt_init="zero_bias").dt_proj.bias == 0)
    with pytest.raises(ValueError, match="dt_init"):
        Mamba(d_model=32, dt_init="bogus")


@pytest.fixture
def block():
    torch.manual_seed(0)
    m = Mamba(d_model=16, d_state=8, d_conv=4, expand=2, dt_init="zero_bias")
    with torch.no_grad():  # non-trivial dt and conv so that padding leaks would show
        m.dt_proj.bias.normal_(0, 1)
    return m.eval()


def test_forward_shape_and_backward(block):
    x = torch.randn(3, 10, 16, requires_grad=True)
    y = block(x)
    assert y.shape == (3, 10, 16)
    y.square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in block.parameters())


def test_left_padding_invariance(block):
    torch.manual_seed(1)
    seq = torch.randn(1, 7, 16)
    outs = []
    for pad in (0, 3, 10):
        junk = torch.randn(1, pad, 16) * 5  # padded embeddings need not be zero; the mask must neutralise them
        x = torch.cat([junk, seq], dim=1)
        mask = torch.cat([torch.zeros(1, pad, dtype=torch.bool), torch.ones(1, 7, dtype=torch.bool)], dim=1)
        y = block(x, mask)
        assert torch.all(y[:, :pad] == 0)
        outs.append(y[:, pad:])
    for y in outs[1:]:
        torch.testing.assert_close(y, outs[0], rtol=1e-6, atol=1e-6)


def test_padding_in_a_batch_matches_single_sequences(block):
    torch.manual_seed(2)
    a, b = torch.randn(1, 8, 16), torch.randn(1, 5, 16)
    x = torch.cat([a, torch.cat([torch.zeros(1, 3, 16), b], dim=1)])
    mask = torch.tensor([[True] * 8, [False] * 3 + [True] * 5])
    y = block(x, mask)
    torch.testing.assert_close(y[0:1], block(a), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(y[1:2, 3:], block(b), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("prefix", [0, 2, 6])
def test_prefill_then_steps_equals_full_forward(block, prefix):
    torch.manual_seed(3)
    x = torch.randn(2, 9, 16)
    full = block(x)
    if prefix:
        y_pre, state = block.prefill(x[:, :prefix])
        torch.testing.assert_close(y_pre, full[:, :prefix], rtol=1e-5, atol=1e-5)
    else:
        state = block.allocate_inference_state(2)
    assert isinstance(state, MambaInferenceState)
    assert state.conv_state.shape == (2, 32, 4) and state.ssm_state.shape == (2, 32, 8)
    for t in range(prefix, 9):
        y_t, state = block.step(x[:, t], state)
        torch.testing.assert_close(y_t, full[:, t], rtol=1e-5, atol=1e-5)


def test_prefill_with_left_padding_then_step(block):
    torch.manual_seed(4)
    seq = torch.randn(1, 6, 16)
    x = torch.cat([torch.randn(1, 4, 16), seq[:, :5]], dim=1)
    mask = torch.tensor([[False] * 4 + [True] * 5])
    _, state = block.prefill(x, mask)
    y_t, _ = block.step(seq[:, 5], state)
    torch.testing.assert_close(y_t, block(seq)[:, 5], rtol=1e-5, atol=1e-5)


def test_cpp_and_reference_scan_give_same_block_output(block):
    if not cpu_ext.available():
        pytest.skip(f"C++ CPU scan extension unavailable: {cpu_ext.build_info()}")
    x = torch.randn(2, 12, 16)
    block.kernel = "cpu"
    y_cpp = block(x)
    block.kernel = "ref"
    torch.testing.assert_close(block(x), y_cpp, rtol=1e-5, atol=1e-6)


def test_fused_block_on_cpu_raises():
    m = Mamba(d_model=16, kernel="fused")
    with pytest.raises(kernels.KernelUnavailable, match="requirements-gpu"):
        m(torch.randn(1, 3, 16))
