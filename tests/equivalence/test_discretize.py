import math

import pytest
import torch

from ssmrec_lib.ssm.discretize import (
    METHODS,
    continuous_impulse_response,
    continuous_step_response,
    discretize,
    is_stable,
    responses,
    run_convolution,
    run_recurrence,
    ssm_kernel,
)

f64 = torch.float64


def test_zoh_scalar_closed_form():
    # h' = a h + b u: Ab = e^{a dt}, Bb = (e^{a dt} - 1) / a * b
    a, b, dt = -0.7, 1.3, 0.25
    Ab, Bb = discretize(torch.tensor([a], dtype=f64), torch.tensor([b], dtype=f64), dt, "zoh")
    assert Ab.item() == pytest.approx(math.exp(a * dt), rel=1e-14)
    assert Bb.item() == pytest.approx((math.exp(a * dt) - 1) / a * b, rel=1e-12)
    # dense path on the same 1x1 system
    Ad, Bd = discretize(torch.tensor([[a]], dtype=f64), torch.tensor([b], dtype=f64), dt, "zoh")
    assert Ad.item() == pytest.approx(math.exp(a * dt), rel=1e-12)
    assert Bd.item() == pytest.approx((math.exp(a * dt) - 1) / a * b, rel=1e-12)


def test_zoh_at_zero_eigenvalue_is_integrator():
    Ab, Bb = discretize(torch.tensor([0.0, -1.0], dtype=f64), torch.ones(2, dtype=f64), 0.5, "zoh")
    assert Ab[0].item() == 1.0 and Bb[0].item() == pytest.approx(0.5)


def test_zoh_step_response_is_exact():
    # ZOH is exact for piecewise-constant inputs: the discrete step response equals the continuous one
    A = -torch.tensor([0.3, 1.0, 4.0], dtype=f64)
    B, C = torch.tensor([1.0, -2.0, 0.5], dtype=f64), torch.tensor([0.5, 1.0, 2.0], dtype=f64)
    (t, y), = responses(A, B, C, [0.1], T=3.0, kind="step", method="zoh").values()
    torch.testing.assert_close(y, continuous_step_response(A, B, C, t), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dt", [0.01, 0.5, 10.0, 1e3])
def test_bilinear_preserves_stability(dt):
    torch.manual_seed(0)
    # a random stable dense A = -S + K (S symmetric positive definite, K skew): Re(eig) < 0, some complex
    P, K = torch.randn(6, 6, dtype=f64), torch.randn(6, 6, dtype=f64)
    A = -(P @ P.T + 0.01 * torch.eye(6, dtype=f64)) + (K - K.T)
    assert torch.linalg.eigvals(A).real.max() < 0
    Ab, _ = discretize(A, torch.ones(6, dtype=f64), dt, "bilinear")
    assert is_stable(Ab)
    # Euler does not preserve it for large steps: the test can tell the two apart
    if dt >= 10:
        assert not is_stable(discretize(A, torch.ones(6, dtype=f64), dt, "euler")[0])


@pytest.mark.parametrize("method", METHODS)
def test_diagonal_and_dense_agree(method):
    torch.manual_seed(1)
    a = -torch.rand(5, dtype=f64) * 3
    B = torch.randn(5, 2, dtype=f64)
    Ab_d, Bb_d = discretize(a, B, 0.3, method)
    Ab_m, Bb_m = discretize(torch.diag(a), B, 0.3, method)
    torch.testing.assert_close(torch.diag(Ab_d), Ab_m, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(Bb_d, Bb_m, rtol=1e-12, atol=1e-12)


def test_mamba_rule_is_first_order_zoh():
    a, B = -torch.rand(4, dtype=f64), torch.randn(4, dtype=f64)
    for dt in (1e-2, 1e-3):
        _, Bz = discretize(a, B, dt, "zoh")
        _, Bm = discretize(a, B, dt, "mamba")
        assert (Bz - Bm).abs().max() < dt**2 * B.abs().max()


@pytest.mark.parametrize("dense", [False, True])
def test_recurrence_equals_convolution(dense):
    torch.manual_seed(2)
    N, L = 6, 40
    A = -torch.rand(N, dtype=f64) - 0.1
    A = torch.diag(A) + 0.1 * torch.randn(N, N, dtype=f64) if dense else A
    B, C = torch.randn(N, dtype=f64), torch.randn(N, dtype=f64)
    Ab, Bb = discretize(A, B, 0.2, "zoh")
    x = torch.randn(3, L, dtype=f64)
    K = ssm_kernel(Ab, Bb, C, L)
    torch.testing.assert_close(run_recurrence(Ab, Bb, C, x), run_convolution(K, x), rtol=1e-10, atol=1e-10)


def test_impulse_response_converges_to_continuous():
    A = -torch.tensor([0.5, 2.0], dtype=f64)
    B, C = torch.tensor([1.0, 1.0], dtype=f64), torch.tensor([1.0, -0.5], dtype=f64)
    errs = []
    for dt, (t, y) in responses(A, B, C, [0.1, 0.01], T=2.0, kind="impulse").items():
        errs.append((y - continuous_impulse_response(A, B, C, t)).abs().max().item())
    assert errs[1] < errs[0] / 5  # first order in dt
