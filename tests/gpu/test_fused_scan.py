"""CUDA: fused mamba-ssm / causal-conv1d kernels vs the reference paths (selective scan, conv, Mamba block).

Run on a CUDA machine with the GPU extra installed (`pip install -r requirements-gpu.txt`); every test is
skipped without CUDA (tests/conftest.py) and the fused ones also without the package they need.
Tolerances are those of fp32 CUDA kernels with a different summation order (mamba-ssm's own tests use
rtol 6e-4 / atol 2e-3 in fp32).
"""

from __future__ import annotations

import pytest
import torch

from ssmrec_lib.ssm import kernels
from ssmrec_lib.ssm.conv import causal_conv1d, causal_conv1d_update
from ssmrec_lib.ssm.mamba import Mamba
from ssmrec_lib.ssm.scan import selective_scan, selective_scan_ref

pytestmark = pytest.mark.gpu
RTOL, ATOL = 1e-3, 2e-3


def _need(module: str, fn_name: str):
    pytest.importorskip(module)
    if getattr(kernels.fused_kernels(), fn_name) is None:
        pytest.skip(f"{fn_name} did not import: {kernels.fused_kernels().errors}")


def _scan_inputs(Bsz=2, Dm=64, L=100, N=16, seed=0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, device="cuda")  # noqa: E731
    ins = [r(Bsz, Dm, L), r(Bsz, Dm, L) * 0.5 - 1, -torch.rand(Dm, N, generator=g, device="cuda") - 0.5,
           r(Bsz, N, L), r(Bsz, N, L), r(Dm), r(Bsz, Dm, L), r(Dm) * 0.3]
    return [t.requires_grad_() for t in ins]


def test_reference_paths_on_cuda_match_cpu():
    """No extra packages needed: the reference Mamba block runs on CUDA and matches the CPU result."""
    torch.manual_seed(0)
    m = Mamba(d_model=32, d_state=16, kernel="ref")
    x = torch.randn(2, 20, 32)
    mask = torch.ones(2, 20, dtype=torch.bool)
    mask[1, :5] = False
    y_cpu = m(x, mask)
    y_gpu = m.cuda()(x.cuda(), mask.cuda())
    torch.testing.assert_close(y_gpu.cpu(), y_cpu, rtol=RTOL, atol=ATOL)


def test_fused_selective_scan_matches_reference():
    _need("mamba_ssm", "selective_scan_fn")
    ins = _scan_inputs()
    gy = torch.randn(2, 64, 100, device="cuda")
    res = []
    for kernel in ("fused", "ref"):
        y, last = selective_scan(*ins, delta_softplus=True, return_last_state=True, kernel=kernel)
        res.append((y, last, *torch.autograd.grad((y * gy).sum(), ins)))
    y_ref = selective_scan_ref(*ins, delta_softplus=True)
    torch.testing.assert_close(res[1][0], y_ref)
    for got, ref in zip(*res):
        torch.testing.assert_close(got, ref, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("activation", [None, "silu"])
def test_fused_causal_conv1d_matches_reference(activation):
    _need("causal_conv1d", "causal_conv1d_fn")
    g = torch.Generator(device="cuda").manual_seed(1)
    x = torch.randn(2, 64, 37, generator=g, device="cuda", requires_grad=True)
    w = torch.randn(64, 4, generator=g, device="cuda", requires_grad=True)
    b = torch.randn(64, generator=g, device="cuda", requires_grad=True)
    outs = []
    for kernel in ("fused", "ref"):
        y = causal_conv1d(x, w, b, activation, kernel=kernel)
        outs.append((y, *torch.autograd.grad(y.square().sum(), [x, w, b])))
    for got, ref in zip(*outs):
        torch.testing.assert_close(got, ref, rtol=RTOL, atol=ATOL)


def test_fused_causal_conv1d_update_matches_reference():
    _need("causal_conv1d", "causal_conv1d_update")
    g = torch.Generator(device="cuda").manual_seed(2)
    x_t, state = torch.randn(2, 64, generator=g, device="cuda"), torch.randn(2, 64, 4, generator=g, device="cuda")
    w, b = torch.randn(64, 4, generator=g, device="cuda"), torch.randn(64, generator=g, device="cuda")
    before = state.clone()
    y_f, s_f = causal_conv1d_update(x_t, state, w, b, "silu", kernel="fused")
    y_r, s_r = causal_conv1d_update(x_t, state, w, b, "silu", kernel="ref")
    torch.testing.assert_close(state, before)
    torch.testing.assert_close(y_f, y_r, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(s_f, s_r)


def test_fused_mamba_block_matches_reference():
    _need("mamba_ssm", "selective_scan_fn")
    _need("causal_conv1d", "causal_conv1d_fn")
    torch.manual_seed(3)
    fused = Mamba(d_model=64, d_state=32, kernel="fused").cuda()
    ref = Mamba(d_model=64, d_state=32, kernel="ref").cuda()
    ref.load_state_dict(fused.state_dict())
    x = torch.randn(4, 50, 64, device="cuda")
    mask = torch.ones(4, 50, dtype=torch.bool, device="cuda")
    mask[1, :7] = False
    outs = []
    for m in (fused, ref):
        y = m(x, mask)
        y.square().sum().backward()
        outs.append((y, *[p.grad.clone() for p in m.parameters()]))
    for got, want in zip(*outs):
        torch.testing.assert_close(got, want, rtol=5e-3, atol=5e-3)


def test_fused_mamba_step_matches_forward():
    _need("mamba_ssm", "selective_state_update")
    _need("causal_conv1d", "causal_conv1d_update")
    torch.manual_seed(4)
    m = Mamba(d_model=64, d_state=16, kernel="fused").cuda().eval()
    x = torch.randn(2, 12, 64, device="cuda")
    with torch.no_grad():
        full = m(x)
        _, state = m.prefill(x[:, :5])
        for t in range(5, 12):
            y_t, state = m.step(x[:, t], state)
            torch.testing.assert_close(y_t, full[:, t], rtol=RTOL, atol=ATOL)
