"""Selective scan: naive recurrence == explicit matrix form == reference loop == C++ kernel (values and grads)."""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch

from ssmrec_lib.ssm import cpu_ext, kernels
from ssmrec_lib.ssm.scan import selective_scan, selective_scan_matrix, selective_scan_naive, selective_scan_ref

NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


def make_inputs(Bsz=2, Dm=3, L=7, N=4, dtype=torch.float64, seed=0, const_BC=False, grad=False):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=dtype)  # noqa: E731
    inp = {
        "u": r(Bsz, Dm, L),
        "delta": r(Bsz, Dm, L) * 0.5 - 1.0,
        "A": -torch.rand(Dm, N, generator=g, dtype=dtype) * 2 - 0.1,
        "B": r(Dm, N) if const_BC else r(Bsz, N, L),
        "C": r(Dm, N) if const_BC else r(Bsz, N, L),
        "D": r(Dm),
        "z": r(Bsz, Dm, L),
        "delta_bias": r(Dm) * 0.3,
    }
    if grad:
        for t in inp.values():
            t.requires_grad_()
    return inp


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b| (scale-aware, robust to single tiny entries)."""
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


OPTION_SETS = list(itertools.product([False, True], repeat=4))  # use D, use z, use delta_bias, softplus


def _call(fn, inp, use_D, use_z, use_bias, softplus, **kw):
    """Run `fn` with a subset of the options. Without softplus dt = |delta| (dt < 0 would make Ab > 1 explode)."""
    delta = inp["delta"] if softplus else inp["delta"].abs()
    return fn(inp["u"], delta, inp["A"], inp["B"], inp["C"], inp["D"] if use_D else None,
              inp["z"] if use_z else None, inp["delta_bias"] if use_bias else None, softplus,
              return_last_state=True, **kw)


@pytest.mark.parametrize("use_D,use_z,use_bias,softplus", OPTION_SETS)
@pytest.mark.parametrize("const_BC", [False, True])
def test_naive_matrix_ref_agree(use_D, use_z, use_bias, softplus, const_BC):
    inp = make_inputs(const_BC=const_BC)
    outs = [_call(f, inp, use_D, use_z, use_bias, softplus)
            for f in (selective_scan_naive, selective_scan_matrix, selective_scan_ref)]
    for y, h in outs[1:]:
        torch.testing.assert_close(y, outs[0][0], rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(h, outs[0][1], rtol=1e-10, atol=1e-10)
    assert outs[0][0].shape == inp["u"].shape and outs[0][1].shape == (2, 3, 4)


def test_hand_computed_single_channel():
    """L=2, N=1, no options: h1 = dt1 B1 u1, h2 = exp(dt2 A) h1 + dt2 B2 u2, y_t = C_t h_t."""
    u = torch.tensor([[[2.0, 3.0]]], dtype=torch.float64)
    dt = torch.tensor([[[0.5, 0.25]]], dtype=torch.float64)
    A = torch.tensor([[-2.0]], dtype=torch.float64)
    B = torch.tensor([[[1.0, 4.0]]], dtype=torch.float64)
    C = torch.tensor([[[3.0, -1.0]]], dtype=torch.float64)
    h1 = 0.5 * 1.0 * 2.0
    h2 = torch.exp(torch.tensor(0.25 * -2.0)).item() * h1 + 0.25 * 4.0 * 3.0
    y, h = selective_scan_ref(u, dt, A, B, C, return_last_state=True)
    torch.testing.assert_close(y, torch.tensor([[[3.0 * h1, -1.0 * h2]]], dtype=torch.float64))
    assert h.item() == pytest.approx(h2)


def test_reference_keeps_low_precision_dtype():
    inp = make_inputs(dtype=torch.float32)
    y32 = _call(selective_scan_ref, inp, True, True, True, True)[0]
    bf = {k: v.to(torch.bfloat16) for k, v in inp.items()}
    y16 = _call(selective_scan_ref, bf, True, True, True, True)[0]
    assert y16.dtype == torch.bfloat16
    torch.testing.assert_close(y16.float(), y32, rtol=0.1, atol=0.1)


def test_gradcheck_reference():
    inp = make_inputs(Bsz=1, Dm=2, L=4, N=3, grad=True)
    fn = lambda *a: selective_scan_ref(*a, delta_softplus=True, return_last_state=True)  # noqa: E731
    assert torch.autograd.gradcheck(fn, tuple(inp[k] for k in NAMES))


def test_fused_on_cpu_raises_with_hint():
    inp = make_inputs()
    with pytest.raises(kernels.KernelUnavailable, match="requirements-gpu"):
        selective_scan(inp["u"], inp["delta"], inp["A"], inp["B"], inp["C"], kernel="fused")


# ---------------------------------------------------------------- C++ kernel

def _need_ext():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if not cpu_ext.available():
            pytest.skip(f"C++ CPU scan extension unavailable: {cpu_ext.build_info()}")


@pytest.mark.parametrize("use_D,use_z,use_bias,softplus", [(True, True, True, True), (False, False, False, False),
                                                           (True, False, True, False)])
def test_cpp_matches_reference_values_and_all_grads(use_D, use_z, use_bias, softplus):
    _need_ext()
    inp = make_inputs(Bsz=3, Dm=24, L=50, N=16, dtype=torch.float32, seed=1, grad=True)
    _compare_cpp_to_ref(inp, use_D, use_z, use_bias, softplus)


@pytest.mark.parametrize("Bsz", [1, 2, 8])
def test_cpp_batch_sizes_and_channel_chunking(Bsz):
    """Small batches split channels into chunks in the backward (separate dB/dC slices, summed at the end)."""
    _need_ext()
    inp = make_inputs(Bsz=Bsz, Dm=13, L=20, N=5, dtype=torch.float32, seed=2, grad=True)
    _compare_cpp_to_ref(inp, True, True, True, True)


def _compare_cpp_to_ref(inp, use_D, use_z, use_bias, softplus):
    Bsz, Dm, L = inp["u"].shape
    N = inp["A"].shape[1]
    leaves = [inp["u"], inp["delta"], inp["A"], inp["B"], inp["C"]] + [
        inp[k] for k, use in (("D", use_D), ("z", use_z), ("delta_bias", use_bias)) if use]
    g = torch.Generator().manual_seed(7)
    gy = torch.randn(Bsz, Dm, L, generator=g)
    gh = torch.randn(Bsz, Dm, N, generator=g)
    res = []
    for fn in (selective_scan_ref, cpu_ext.selective_scan_cpu):
        y, h = _call(fn, inp, use_D, use_z, use_bias, softplus)
        grads = torch.autograd.grad((y * gy).sum() + (h * gh).sum(), leaves)
        res.append((y, h, *grads))
    for ref, got in zip(*res):
        assert got.shape == ref.shape and got.dtype == ref.dtype
        assert rel_err(got, ref) < 1e-5


def test_cpp_gradcheck_float64():
    _need_ext()
    inp = make_inputs(Bsz=2, Dm=2, L=5, N=3, grad=True)
    fn = lambda *a: cpu_ext.selective_scan_cpu(*a, delta_softplus=True, return_last_state=True)  # noqa: E731
    assert torch.autograd.gradcheck(fn, tuple(inp[k] for k in NAMES))


def test_cpp_only_y_or_only_last_state_in_loss():
    _need_ext()
    inp = make_inputs(dtype=torch.float32, grad=True)
    for pick in (0, 1):
        outs = [_call(fn, inp, True, True, True, True)[pick].sum()
                for fn in (selective_scan_ref, cpu_ext.selective_scan_cpu)]
        ga, gb = (torch.autograd.grad(o, [inp["u"], inp["A"], inp["B"]]) for o in outs)
        for a, b in zip(ga, gb):
            assert rel_err(b, a) < 1e-5


def test_cpp_bfloat16_in_bfloat16_out():
    _need_ext()
    inp = {k: v.to(torch.bfloat16) for k, v in make_inputs(dtype=torch.float32).items()}
    y = _call(cpu_ext.selective_scan_cpu, inp, True, True, True, True)[0]
    y_ref = _call(selective_scan_ref, inp, True, True, True, True)[0]
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y, y_ref, rtol=2e-2, atol=2e-2)


def test_loading_the_extension_keeps_denormals():
    """-ffast-math must stay out of the link step: crtfastmath.o would flush denormals for the whole process."""
    _need_ext()
    assert (torch.tensor([1e-40]) * 1.0).item() != 0.0


def test_dispatch_uses_cpp_on_cpu(monkeypatch):
    _need_ext()
    called = []
    real = cpu_ext.selective_scan_cpu
    monkeypatch.setattr(cpu_ext, "selective_scan_cpu", lambda *a: called.append(1) or real(*a))
    inp = make_inputs(dtype=torch.float32)
    y = selective_scan(inp["u"], inp["delta"], inp["A"], inp["B"], inp["C"], inp["D"], kernel="ref")
    assert called and rel_err(y, selective_scan_ref(inp["u"], inp["delta"], inp["A"], inp["B"], inp["C"],
                                                    inp["D"])) < 1e-5


def test_disable_env_falls_back_with_one_warning(monkeypatch):
    monkeypatch.setenv("SSMREC_DISABLE_CPU_EXT", "1")
    monkeypatch.setitem(cpu_ext._state, "warned", False)
    inp = make_inputs(dtype=torch.float32)
    with pytest.warns(RuntimeWarning, match="SSMREC_DISABLE_CPU_EXT"):
        assert not cpu_ext.available()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second call must not warn again
        y = _call(cpu_ext.selective_scan_cpu, inp, True, True, True, True)
        y2 = _call(selective_scan, inp, True, True, True, True, kernel="auto")
    y_ref = _call(selective_scan_ref, inp, True, True, True, True)
    for a, b in zip(y + y2, y_ref + y_ref):
        torch.testing.assert_close(a, b)


def test_build_failure_falls_back_and_names_reason(monkeypatch):
    for key, value in {"tried": True, "module": None, "error": "RuntimeError: Ninja is required",
                       "warned": False}.items():
        monkeypatch.setitem(cpu_ext._state, key, value)
    monkeypatch.delenv("SSMREC_DISABLE_CPU_EXT", raising=False)
    with pytest.warns(RuntimeWarning, match="Ninja is required"):
        assert not cpu_ext.available()
    inp = make_inputs()
    y = _call(selective_scan, inp, True, True, True, True)[0]
    torch.testing.assert_close(y, _call(selective_scan_ref, inp, True, True, True, True)[0])


def test_cpp_backward_is_bit_reproducible():
    """Same inputs -> bit-identical gradients on every call (resume-equality of training relies on it). Scratch
    buffers are 64-byte aligned: with std::allocator, -ffast-math reductions rounded differently now and then."""
    _need_ext()
    inp = make_inputs(Bsz=2, Dm=5, L=9, N=7, dtype=torch.float32, grad=True)
    args = tuple(inp[k] for k in NAMES)
    first = None
    for _ in range(100):  # the unaligned build failed this loop in 3 of 10 runs of 30 calls
        y, last = cpu_ext.selective_scan_cpu(*args, delta_softplus=True, return_last_state=True)
        grads = torch.autograd.grad((y.sum() + last.square().sum()), args)
        if first is None:
            first = grads
        for a, b in zip(first, grads):
            assert torch.equal(a, b)
