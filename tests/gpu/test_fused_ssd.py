"""Fused (mamba-ssm Triton) SSD / gated RMSNorm / Mamba2 vs the reference paths, on CUDA.

Skipped without CUDA (tests/conftest.py) and, per test, when the fused piece it needs did not import
(the skip reason carries the import errors from `kernels.fused_kernels()`).
"""

import pytest
import torch

from ssmrec_lib.ssm import kernels
from ssmrec_lib.ssm.hydra import Hydra, quasiseparable_mixer
from ssmrec_lib.ssm.mamba2 import Mamba2
from ssmrec_lib.ssm.norm import RMSNormGated, rms_norm_gated_ref
from ssmrec_lib.ssm.ssd import ssd, ssd_chunked

pytestmark = pytest.mark.gpu
DEV = torch.device("cuda")


def need(*names: str):
    k = kernels.fused_kernels()
    missing = [n for n in names if getattr(k, n) is None]
    if missing:
        pytest.skip(f"fused {missing} unavailable: {'; '.join(k.errors)}")


def assert_close_tf32(actual, expected, rel: float = 5e-3):
    """Triton's tl.dot multiplies fp32 in TF32 (10-bit mantissa, unit roundoff ~5e-4) on Ampere and later, so
    single elements near zero can differ by far more than an elementwise rtol allows (seen on an H200: 0.6% of
    elements off by up to 0.03 at magnitudes ~10). Compare in norm, relative to the reference's scale."""
    err = (actual.double() - expected.double()).norm() / expected.double().norm().clamp_min(1e-12)
    assert err < rel, f"relative error {err:.2e} >= {rel:.0e}"
    assert (actual - expected).abs().max() <= 2e-2 * expected.abs().max() + 1e-6


def ssd_inputs(b=3, l=100, h=4, p=32, g=2, n=32, seed=0):
    gen = torch.Generator(device="cpu").manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=gen).to(DEV)  # noqa: E731
    return dict(X=r(b, l, h, p), dt=r(b, l, h) - 2, A=-torch.rand(h, generator=gen).to(DEV) - 0.5,
                B=r(b, l, g, n), C=r(b, l, g, n))


@pytest.mark.parametrize("l", [64, 100, 1])
def test_fused_ssd_matches_chunked(l):
    need("mamba_chunk_scan_combined")
    inp = ssd_inputs(l=l)
    kw = dict(chunk_size=32, D=torch.randn(4, device=DEV), z=torch.randn(3, l, 4, 32, device=DEV),
              dt_bias=torch.randn(4, device=DEV) * 0.1, dt_softplus=True,
              initial_states=torch.randn(3, 4, 32, 32, device=DEV), return_final_states=True)
    y_f, s_f = ssd(**inp, **kw, kernel="fused")
    y_r, s_r = ssd_chunked(**inp, **kw)
    assert_close_tf32(y_f, y_r)
    assert_close_tf32(s_f, s_r)


def test_fused_ssd_gradients_match():
    need("mamba_chunk_scan_combined")
    base = ssd_inputs(l=80, seed=1)
    grads = {}
    for path in ("fused", "ref"):
        inp = {k: v.clone().requires_grad_(k != "A") for k, v in base.items()}
        y = ssd(**inp, chunk_size=32, dt_softplus=True, kernel=path)
        (y * torch.linspace(-1, 1, y.numel(), device=DEV).view_as(y)).sum().backward()
        grads[path] = {k: v.grad for k, v in inp.items() if k != "A"}
    for k in grads["ref"]:
        assert_close_tf32(grads["fused"][k], grads["ref"][k], rel=1e-2)


@pytest.mark.parametrize("norm_before_gate,group_size", [(False, 64), (True, None)])
def test_fused_rmsnorm_gated_matches_reference(norm_before_gate, group_size):
    need("rms_norm_gated_fn")
    n = RMSNormGated(128, norm_before_gate=norm_before_gate, group_size=group_size, kernel="fused").to(DEV)
    n.weight.data.normal_()
    x, z = torch.randn(4, 50, 128, device=DEV), torch.randn(4, 50, 128, device=DEV)
    want = rms_norm_gated_ref(x, n.weight, z, n.eps, group_size, norm_before_gate)
    torch.testing.assert_close(n(x, z), want, rtol=1e-4, atol=1e-4)


def _same_weights(cls, kernel_a, kernel_b, **kw):
    torch.manual_seed(0)
    a = cls(64, **kw, kernel=kernel_a).to(DEV)
    b = cls(64, **kw, kernel=kernel_b).to(DEV)
    b.load_state_dict(a.state_dict())
    return a, b


@pytest.mark.parametrize("kernel", ["auto", "fused"])
def test_mamba2_fast_path_matches_ref(kernel):
    need("mamba_chunk_scan_combined", "rms_norm_gated_fn")
    if kernel == "fused":
        need("causal_conv1d_fn", "causal_conv1d_update")
    fast, ref = _same_weights(Mamba2, kernel, "ref", d_state=32, headdim=32, chunk_size=32)
    u = torch.randn(3, 70, 64, device=DEV)
    mask = torch.ones(3, 70, dtype=torch.bool, device=DEV)
    mask[1, :9] = False
    torch.testing.assert_close(fast(u, mask), ref(u, mask), rtol=2e-3, atol=2e-3)
    # recurrent inference on the fast path: prefill + steps == full forward
    y = fast(u)
    _, state = fast.prefill(u[:, :60])
    outs = []
    for t in range(60, 70):
        o, state = fast.step(u[:, t], state)
        outs.append(o)
    torch.testing.assert_close(torch.stack(outs, 1), y[:, 60:], rtol=2e-3, atol=2e-3)


def test_hydra_fused_matches_ref():
    need("mamba_chunk_scan_combined", "rms_norm_gated_fn")
    fast, ref = _same_weights(Hydra, "fused", "ref", d_state=32, headdim=32, chunk_size=32)
    u = torch.randn(2, 90, 64, device=DEV)
    mask = torch.ones(2, 90, dtype=torch.bool, device=DEV)
    mask[0, :20] = False
    torch.testing.assert_close(fast(u, mask), ref(u, mask), rtol=2e-3, atol=2e-3)
    inp = ref.mixer_inputs(u)
    inp.pop("z")
    torch.testing.assert_close(quasiseparable_mixer(**inp, chunk_size=32, kernel="fused"),
                               quasiseparable_mixer(**inp, chunk_size=32, kernel="ref"), rtol=2e-3, atol=2e-3)
