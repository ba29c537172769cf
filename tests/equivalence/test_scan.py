"""Selective scan: naive recurrence == explicit matrix form == reference loop == C++ kernel (values and grads),
and the scan's kernel switch (ref / cpu / auto / fused)."""

from __future__ import annotations

import itertools
import logging

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


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-13), (torch.float32, 1e-6)])
def test_cpp_softplus_keeps_relative_precision_for_very_negative_preactivations(dtype, rtol):
    """dt = softplus(x) ~ exp(x) for x << 0: log(1 + exp(x)) rounds 1 + exp(x) and loses every digit there
    (float64: 5e-8 relative error at -20, 2e-3 at -30, dt = 0 at -40); log1p keeps them. With u = B = C = 1,
    one step and one state, y = dt exactly."""
    _need_ext()
    x = torch.tensor([-15.0, -20.0, -30.0, -40.0, -60.0, -3.0, 0.0, 4.0], dtype=dtype)
    Dm = x.numel()
    one = torch.ones(1, 1, 1, dtype=dtype)
    u = torch.ones(1, Dm, 1, dtype=dtype)
    delta = x.view(1, Dm, 1) - 0.5  # exact in binary; the bias adds the 0.5 back before the softplus
    bias = torch.full((Dm,), 0.5, dtype=dtype)
    y = selective_scan(u, delta, -torch.ones(Dm, 1, dtype=dtype), one, one, delta_bias=bias, delta_softplus=True,
                       kernel="cpu")
    want = torch.nn.functional.softplus(x)
    assert (want > 0).all()
    torch.testing.assert_close(y.flatten(), want, rtol=rtol, atol=0)


def test_loading_leaves_the_build_flags_and_names_alone(monkeypatch, tmp_path):
    """torch's `load` extends extra_ldflags in place: passing the module's list changed the build name of every
    extension loaded after the first, so the stream step rebuilt (~30 s) whenever the load order differed."""
    import torch.utils.cpp_extension

    def fake_load(name, sources, extra_cflags, extra_ldflags, build_directory, verbose):
        extra_ldflags += ["-L/torch/lib", "-ltorch"]  # what torch's load does
        return object()

    monkeypatch.setattr(torch.utils.cpp_extension, "load", fake_load)
    monkeypatch.setenv("SSMREC_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("SSMREC_DISABLE_CPU_EXT", raising=False)
    for op in cpu_ext.EXTENSIONS:
        monkeypatch.setitem(cpu_ext._states, op, {"module": None, "error": None, "tried": False, "build_s": None})
    names = {op: cpu_ext._build_name(*cpu_ext.EXTENSIONS[op][:2]) for op in cpu_ext.EXTENSIONS}
    flags = (list(cpu_ext.CFLAGS), list(cpu_ext.LDFLAGS))
    assert all(cpu_ext.module(op) is not None for op in cpu_ext.EXTENSIONS)
    assert (cpu_ext.CFLAGS, cpu_ext.LDFLAGS) == flags
    assert names == {op: cpu_ext._build_name(*cpu_ext.EXTENSIONS[op][:2]) for op in cpu_ext.EXTENSIONS}


def test_loading_the_extension_keeps_denormals():
    """-ffast-math must stay out of the link step: crtfastmath.o would flush denormals for the whole process."""
    _need_ext()
    assert (torch.tensor([1e-40]) * 1.0).item() != 0.0


@pytest.mark.parametrize("kernel", ["cpu", "auto"])
def test_dispatch_uses_cpp_on_cpu(monkeypatch, kernel):
    _need_ext()
    called = []
    real = cpu_ext.selective_scan_cpu
    monkeypatch.setattr(cpu_ext, "selective_scan_cpu", lambda *a: called.append(1) or real(*a))
    inp = make_inputs(dtype=torch.float32)
    y = selective_scan(inp["u"], inp["delta"], inp["A"], inp["B"], inp["C"], inp["D"], kernel=kernel)
    assert called and rel_err(y, selective_scan_ref(inp["u"], inp["delta"], inp["A"], inp["B"], inp["C"],
                                                    inp["D"])) < 1e-5


def test_cpp_refuses_inputs_it_does_not_cover():
    """Constant B, C: kernel="cpu" raises (it never swaps in the reference), "auto" takes the reference."""
    inp = make_inputs(const_BC=True)
    with pytest.raises(kernels.KernelUnavailable, match="constant"):
        _call(selective_scan, inp, True, True, True, True, kernel="cpu")
    with pytest.raises(ValueError, match="constant"):
        _call(cpu_ext.selective_scan_cpu, inp, True, True, True, True)
    y = _call(selective_scan, inp, True, True, True, True, kernel="auto")
    for a, b in zip(y, _call(selective_scan_ref, inp, True, True, True, True)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_disabled_extension_auto_takes_reference_cpu_raises(monkeypatch):
    monkeypatch.setenv("SSMREC_DISABLE_CPU_EXT", "1")
    assert not cpu_ext.available()
    inp = make_inputs(dtype=torch.float32)
    y = _call(selective_scan, inp, True, True, True, True, kernel="auto")
    for a, b in zip(y, _call(selective_scan_ref, inp, True, True, True, True)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(kernels.KernelUnavailable, match="SSMREC_DISABLE_CPU_EXT is set.*ninja"):
        _call(selective_scan, inp, True, True, True, True, kernel="cpu")
    with pytest.raises(RuntimeError, match="SSMREC_DISABLE_CPU_EXT"):
        _call(cpu_ext.selective_scan_cpu, inp, True, True, True, True)


def test_build_failure_auto_warns_once_and_cpu_names_reason(monkeypatch, caplog):
    for key, value in {"tried": True, "module": None, "error": "RuntimeError: Ninja is required"}.items():
        monkeypatch.setitem(cpu_ext._states["selective_scan"], key, value)
    monkeypatch.delenv("SSMREC_DISABLE_CPU_EXT", raising=False)
    monkeypatch.setattr(kernels, "_logged", set())
    inp = make_inputs()
    with caplog.at_level(logging.INFO, logger=kernels.__name__):
        ys = [_call(selective_scan, inp, True, True, True, True)[0] for _ in range(2)]
    records = [r for r in caplog.records if r.name == kernels.__name__]
    assert len(records) == 1 and records[0].levelno == logging.WARNING
    assert "-> ref" in records[0].getMessage() and "Ninja is required" in records[0].getMessage()
    want = _call(selective_scan_ref, inp, True, True, True, True)[0]
    for y in ys:
        torch.testing.assert_close(y, want, rtol=0, atol=0)
    with pytest.raises(kernels.KernelUnavailable, match="Ninja is required"):
        _call(selective_scan, inp, True, True, True, True, kernel="cpu")


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
