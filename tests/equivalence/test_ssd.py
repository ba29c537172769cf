import pytest
import torch

from ssmrec_lib.ssm.ssd import segsum, semiseparable_matrix, ssd, ssd_chunked, ssd_naive, ssd_quadratic

f64 = torch.float64


def make_inputs(b=2, l=37, h=4, p=3, g=2, n=5, dtype=f64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=gen, dtype=dtype)  # noqa: E731
    return dict(X=r(b, l, h, p), dt=r(b, l, h), A=-torch.rand(h, generator=gen, dtype=dtype) - 0.5,
                B=r(b, l, g, n), C=r(b, l, g, n))


def test_segsum_matches_definition():
    x = torch.randn(2, 7, dtype=f64)
    S = segsum(x)
    for t in range(7):
        for s in range(7):
            want = x[:, s + 1 : t + 1].sum(-1) if t >= s else torch.full((2,), float("-inf"), dtype=f64)
            torch.testing.assert_close(S[:, t, s], want)


def test_quadratic_equals_naive():
    inp = make_inputs()
    kw = dict(D=torch.randn(4, dtype=f64), z=torch.randn(2, 37, 4, 3, dtype=f64), dt_softplus=True,
              dt_bias=torch.randn(4, dtype=f64))
    torch.testing.assert_close(ssd_quadratic(**inp, **kw), ssd_naive(**inp, **kw), rtol=1e-10, atol=1e-10)


def test_semiseparable_matrix_is_lower_triangular_with_known_diagonal():
    inp = make_inputs()
    dt = inp["dt"].abs()
    M = semiseparable_matrix(dt, inp["A"], inp["B"], inp["C"])  # (b, h, l, l)
    assert torch.all(M.triu(1) == 0)
    # diagonal: exp(0) * (C_t . B_t) * dt_t
    CB = torch.einsum("btgn,btgn->btg", inp["C"], inp["B"]).repeat_interleave(2, dim=2)  # (b, l, h)
    torch.testing.assert_close(torch.diagonal(M, dim1=-2, dim2=-1), (CB * dt).transpose(1, 2))


@pytest.mark.parametrize("l,chunk", [(37, 8), (64, 16), (5, 64), (1, 4), (33, 32)])
def test_chunked_equals_naive_any_length(l, chunk):
    inp = make_inputs(l=l)
    h0 = torch.randn(2, 4, 3, 5, dtype=f64)
    kw = dict(D=torch.randn(4, 3, dtype=f64), dt_softplus=True, initial_states=h0, return_final_states=True)
    y0, s0 = ssd_naive(**inp, **kw)
    y1, s1 = ssd_chunked(**inp, chunk_size=chunk, **kw)
    torch.testing.assert_close(y1, y0, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(s1, s0, rtol=1e-10, atol=1e-10)


def test_chunked_fp32_close_and_gradients_match():
    inp = {k: v.float().requires_grad_(k != "A") for k, v in make_inputs(l=50, seed=3).items()}
    y1 = ssd_chunked(**inp, chunk_size=16, dt_softplus=True)
    ref = {k: v.detach().double().requires_grad_(k != "A") for k, v in inp.items()}
    y0 = ssd_naive(**ref, dt_softplus=True)
    torch.testing.assert_close(y1.double(), y0, rtol=1e-4, atol=1e-4)
    w = torch.randn_like(y0)
    (y1 * w.float()).sum().backward()
    (y0 * w).sum().backward()
    for k in ("X", "dt", "B", "C"):
        torch.testing.assert_close(inp[k].grad.double(), ref[k].grad, rtol=1e-3, atol=1e-3)


def test_splitting_the_sequence_with_states_is_exact():
    # running [0, m) then [m, l) from the carried state equals one run over [0, l)
    inp = make_inputs(l=40)
    y, s = ssd_chunked(**inp, chunk_size=8, return_final_states=True)
    first = {k: (v[:, :17] if v.ndim > 1 else v) for k, v in inp.items()}
    rest = {k: (v[:, 17:] if v.ndim > 1 else v) for k, v in inp.items()}
    ya, sa = ssd_chunked(**first, chunk_size=8, return_final_states=True)
    yb, sb = ssd_chunked(**rest, chunk_size=8, initial_states=sa, return_final_states=True)
    torch.testing.assert_close(torch.cat([ya, yb], 1), y)
    torch.testing.assert_close(sb, s)


def test_dispatch_ref_on_cpu():
    inp = make_inputs(dtype=torch.float32)
    torch.testing.assert_close(ssd(**inp, chunk_size=8, kernel="auto"), ssd_chunked(**inp, chunk_size=8))


def test_rejects_bad_groups():
    inp = make_inputs(h=3, g=2)
    with pytest.raises(ValueError, match="ngroups"):
        ssd_chunked(**inp)


def test_strong_decay_stays_finite():
    # dt * A down to -1e3 per step: exp of the masked upper triangle must never be computed as exp(+large)
    inp = make_inputs(l=40, dtype=torch.float32)
    inp["dt"] = (inp["dt"].abs() * 50).requires_grad_()
    inp["A"] = inp["A"] * 10
    y = ssd_chunked(**inp, chunk_size=16)
    y.sum().backward()
    assert torch.isfinite(y).all() and torch.isfinite(inp["dt"].grad).all()
    ref = ssd_naive(**{k: v.detach().double() for k, v in inp.items()})
    torch.testing.assert_close(y.double(), ref, rtol=1e-4, atol=1e-4)
