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


def test_dispatch_ref_on_cpu():  # kernel="ref" is the chunked PyTorch maths
    inp = make_inputs(dtype=torch.float32)
    torch.testing.assert_close(ssd(**inp, chunk_size=8, kernel="ref"), ssd_chunked(**inp, chunk_size=8),
                               rtol=0, atol=0)


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


# ---------------------------------------------------------------- C++ recurrence (kernel="cpu")

def _need_cpp():
    from ssmrec_lib.ssm import cpu_ext

    if not cpu_ext.available("ssd"):
        pytest.skip(f"C++ SSD unavailable: {cpu_ext.build_info('ssd')}")


def _rel(got, want):
    return ((got - want).abs().max() / want.abs().max().clamp_min(1e-30)).item()


def _all_outputs_and_grads(fn, inp, extra, seed=7):
    """y, final states and the gradients of a random projection of both w.r.t. every tensor input."""
    leaves = {k: v.detach().clone().requires_grad_() for k, v in {**inp, **extra}.items() if torch.is_tensor(v)}
    kw = {k: leaves.get(k, v) for k, v in {**inp, **extra}.items()}
    y, s = fn(**kw)
    g = torch.Generator().manual_seed(seed)
    wy = torch.randn(y.shape, generator=g, dtype=f64).to(y.dtype)  # drawn in float64: the same for every dtype
    ws = torch.randn(s.shape, generator=g, dtype=f64).to(s.dtype)
    names = sorted(leaves)
    grads = torch.autograd.grad((y * wy).sum() + (s * ws).sum(), [leaves[k] for k in names])
    return {"y": y, "final": s} | {f"d{k}": gr for k, gr in zip(names, grads)}


@pytest.mark.parametrize("b,l,h,p,g,n", [(2, 37, 4, 3, 2, 5),    # l not a multiple of any chunk, 2 groups
                                         (3, 64, 4, 8, 1, 16),   # one group shared by every head
                                         (2, 9, 6, 2, 6, 3),     # a group per head
                                         (1, 1, 2, 1, 1, 1)])    # one step, headdim and d_state 1
def test_cpp_equals_naive_values_and_all_gradients_float64(b, l, h, p, g, n):
    _need_cpp()
    inp = make_inputs(b=b, l=l, h=h, p=p, g=g, n=n, seed=b * l)
    gen = torch.Generator().manual_seed(1)
    extra = dict(D=torch.randn(h, p, dtype=f64, generator=gen), z=torch.randn(b, l, h, p, dtype=f64, generator=gen),
                 dt_bias=torch.randn(h, dtype=f64, generator=gen), dt_softplus=True,
                 initial_states=torch.randn(b, h, p, n, dtype=f64, generator=gen), return_final_states=True)
    want = _all_outputs_and_grads(ssd_naive, inp, extra)
    got = _all_outputs_and_grads(lambda **k: ssd(**k, chunk_size=8, kernel="cpu"), inp, extra)
    assert set(got) == set(want)
    for k in want:
        assert got[k].shape == want[k].shape and got[k].dtype == want[k].dtype, k
        torch.testing.assert_close(got[k], want[k], rtol=1e-10, atol=1e-10, msg=k)


def test_cpp_float32_within_stated_tolerance_of_float64():
    """float32: values and gradients within 5e-6 of the float64 maths (relative to the largest entry; measured
    ~2e-7 here), and no worse than 10x the chunked PyTorch path's float32 error (measured: smaller than it)."""
    _need_cpp()
    inp64 = make_inputs(b=3, l=200, h=4, p=8, g=1, n=16, seed=5)
    inp64["dt"] = inp64["dt"] - 2  # softplus(dt - 2) ~ 0.1, the models' range
    extra64 = dict(D=torch.ones(4, dtype=f64), dt_softplus=True, return_final_states=True)
    want = _all_outputs_and_grads(ssd_naive, inp64, extra64)
    f32 = lambda d: {k: v.float() if torch.is_tensor(v) else v for k, v in d.items()}  # noqa: E731
    got = _all_outputs_and_grads(lambda **k: ssd(**k, kernel="cpu"), f32(inp64), f32(extra64))
    chunked = _all_outputs_and_grads(lambda **k: ssd_chunked(**k, chunk_size=64), f32(inp64), f32(extra64))
    for k in want:
        assert got[k].dtype == torch.float32
        err, err_chunked = _rel(got[k].double(), want[k]), _rel(chunked[k].double(), want[k])
        assert err < 5e-6, (k, err)
        assert err < 10 * err_chunked + 1e-6, (k, err, err_chunked)


def test_cpp_gradcheck_float64():
    _need_cpp()
    inp = {k: v.requires_grad_() for k, v in make_inputs(b=2, l=5, h=2, p=2, g=1, n=3).items()}
    h0 = torch.randn(2, 2, 2, 3, dtype=f64, requires_grad=True)
    fn = lambda X, dt, A, B, C, h0: ssd(X, dt, A, B, C, dt_softplus=True, initial_states=h0,  # noqa: E731
                                          return_final_states=True, kernel="cpu")
    assert torch.autograd.gradcheck(fn, (inp["X"], inp["dt"], inp["A"], inp["B"], inp["C"], h0))


def test_cpp_only_y_or_only_final_states_in_the_loss():
    _need_cpp()
    inp = {k: v.requires_grad_() for k, v in make_inputs(l=21).items()}
    for pick in (0, 1):
        outs = [fn(**inp, dt_softplus=True, return_final_states=True)[pick].sum()
                for fn in (ssd_naive, lambda **k: ssd(**k, kernel="cpu"))]
        ga, gb = (torch.autograd.grad(o, [inp["X"], inp["dt"], inp["A"], inp["B"]]) for o in outs)
        for a, b in zip(ga, gb):
            torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-10)


def test_cpp_padded_batch_of_different_lengths_equals_each_row_alone():
    """Left padding as the models make it (X = 0 and dt = 0 at padded steps): each row's real outputs equal the
    row run alone, unpadded, and equal the PyTorch path on the padded batch."""
    _need_cpp()
    lengths = [23, 7, 16]
    l = max(lengths)
    inp = make_inputs(b=3, l=l, seed=4)
    inp["dt"] = torch.nn.functional.softplus(inp["dt"])
    for i, n_real in enumerate(lengths):
        inp["X"][i, : l - n_real] = 0
        inp["dt"][i, : l - n_real] = 0
    y, s = ssd(**inp, return_final_states=True, kernel="cpu")
    y_ref, s_ref = ssd(**inp, chunk_size=8, return_final_states=True, kernel="ref")
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(s, s_ref, rtol=1e-10, atol=1e-10)
    for i, n_real in enumerate(lengths):
        row = {k: (v[i : i + 1, l - n_real :] if v.ndim > 1 else v) for k, v in inp.items()}
        y_i, s_i = ssd_naive(**row, return_final_states=True)
        torch.testing.assert_close(y[i : i + 1, l - n_real :], y_i, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(s[i : i + 1], s_i, rtol=1e-10, atol=1e-10)


def test_cpp_bfloat16_in_bfloat16_out():
    _need_cpp()
    inp = {k: v.to(torch.bfloat16) for k, v in make_inputs(dtype=torch.float32).items()}
    y = ssd(**inp, dt_softplus=True, kernel="cpu")
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y, ssd(**inp, dt_softplus=True, kernel="ref"), rtol=2e-2, atol=2e-2)


def test_auto_takes_the_cpp_recurrence_on_cpu():
    _need_cpp()
    inp = make_inputs(dtype=torch.float32)
    torch.testing.assert_close(ssd(**inp, kernel="auto"), ssd(**inp, kernel="cpu"), rtol=0, atol=0)
