"""The kernel switch does what it says, op by op (ssm/kernels.py):
"ref" never loads the C++ extension nor the CUDA packages; "cpu" runs the C++ kernel where the op has one (and
equals "ref"), the PyTorch maths where it has none; "fused" and an unavailable "cpu" raise with the install hint;
"auto" takes the fastest path available and logs its choice once."""

from __future__ import annotations

import logging

import pytest
import torch

from ssmrec_lib import streaming
from ssmrec_lib.config import ConfigError
from ssmrec_lib.models.registry import build_model
from ssmrec_lib.ssm import cpu_ext, kernels
from ssmrec_lib.ssm.conv import causal_conv1d, causal_conv1d_update
from ssmrec_lib.ssm.mamba import Mamba
from ssmrec_lib.ssm.norm import RMSNormGated
from ssmrec_lib.ssm.scan import selective_scan
from ssmrec_lib.ssm.ssd import ssd


def _gen():
    g = torch.Generator().manual_seed(0)
    return lambda *s: torch.randn(*s, generator=g)


def _scan(kernel):
    r = _gen()
    u, delta, z = r(2, 6, 9), r(2, 6, 9) * 0.5 - 1, r(2, 6, 9)
    A = -torch.rand(6, 4, generator=torch.Generator().manual_seed(1)) - 0.1
    return selective_scan(u, delta, A, r(2, 4, 9), r(2, 4, 9), r(6), z, r(6), True, True, kernel=kernel)


def _conv(kernel):
    r = _gen()
    return causal_conv1d(r(2, 6, 9), r(6, 4), r(6), "silu", kernel=kernel)


def _conv_update(kernel):
    r = _gen()
    return causal_conv1d_update(r(2, 6), r(2, 6, 4), r(6, 4), r(6), "silu", kernel=kernel)


def _ssd(kernel):
    r = _gen()
    return ssd(r(2, 11, 4, 3), r(2, 11, 4), -torch.rand(4, generator=torch.Generator().manual_seed(1)) - 0.5,
               r(2, 11, 2, 5), r(2, 11, 2, 5), chunk_size=4, D=r(4), dt_softplus=True, return_final_states=True,
               kernel=kernel)


def _norm(kernel):
    r = _gen()
    return RMSNormGated(12, group_size=6, kernel=kernel)(r(2, 5, 12), r(2, 5, 12))


def _state_update(kernel):  # the op lives in Mamba.step
    torch.manual_seed(0)
    m = Mamba(d_model=8, d_state=4, kernel=kernel).eval()
    state = m.allocate_inference_state(2)
    with torch.no_grad():
        y, state = m.step(torch.randn(2, 8), state)
    return y, state.conv_state, state.ssm_state


def _stream_model(name, kernel):
    torch.manual_seed(0)
    model = build_model(name, n_items=30, max_len=16, overrides={"kernel": kernel}).eval()
    with torch.no_grad():  # off the init, so every term shows
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def _stream(kernel, name="mamba4rec"):
    model = _stream_model(name, kernel)
    history = torch.randint(1, 31, (2, 7), generator=torch.Generator().manual_seed(2))
    _, state = streaming.prefill(model, history[:, :-1])
    h, _ = streaming.update(model, state, history[:, -1])
    return h


RUNNERS = {"selective_scan": _scan, "causal_conv1d": _conv, "causal_conv1d_update": _conv_update, "ssd": _ssd,
           "rms_norm_gated": _norm, "selective_state_update": _state_update, "stream_step": _stream}
CPP_OPS = sorted(op for op, (has_cpp, _) in kernels.OPS.items() if has_cpp)


def _flat(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _need(op):
    if not cpu_ext.available(op):
        pytest.skip(f"C++ {op} unavailable: {cpu_ext.build_info(op)}")


@pytest.fixture
def no_cpp_no_cuda(monkeypatch):
    """Any use of the C++ extension (every one goes through cpu_ext.module) or of the CUDA packages raises."""
    def forbidden(*_a, **_k):
        raise AssertionError("the C++ extension / CUDA packages were reached")

    monkeypatch.setattr(cpu_ext, "module", forbidden)
    monkeypatch.setattr(cpu_ext, "_load_once", forbidden)
    monkeypatch.setattr(kernels, "fused_kernels", forbidden)


@pytest.fixture
def cpp_calls(monkeypatch):
    """Records the op of every cpu_ext.module call."""
    calls = []
    real = cpu_ext.module
    monkeypatch.setattr(cpu_ext, "module", lambda op: calls.append(op) or real(op))
    return calls


def test_every_op_has_a_runner_here():
    assert set(RUNNERS) == set(kernels.OPS)
    assert CPP_OPS == ["selective_scan", "ssd", "stream_step"]


@pytest.mark.parametrize("op", sorted(RUNNERS))
def test_ref_never_reaches_the_extension_or_cuda(op, no_cpp_no_cuda):
    assert kernels.resolve("ref", op, torch.device("cpu")) == "ref"
    for t in _flat(RUNNERS[op]("ref")):
        assert torch.isfinite(t).all()


@pytest.mark.parametrize("op", CPP_OPS)
def test_cpu_runs_the_extension_and_equals_ref(op, cpp_calls):
    _need(op)
    cpp_calls.clear()
    want = _flat(RUNNERS[op]("ref"))
    assert op not in cpp_calls
    got = _flat(RUNNERS[op]("cpu"))
    assert op in cpp_calls
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op", sorted(set(RUNNERS) - set(CPP_OPS)))
def test_cpu_without_a_cpp_kernel_runs_the_pytorch_maths(op, no_cpp_no_cuda):
    assert kernels.resolve("cpu", op, torch.device("cpu")) == "ref"
    assert kernels.path_name("cpu", op, "cpu") == "ref"
    for a, b in zip(_flat(RUNNERS[op]("cpu")), _flat(RUNNERS[op]("ref")), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_mamba2_streaming_cpu_equals_ref(cpp_calls):
    _need("stream_step")
    torch.testing.assert_close(_stream("cpu", "mamba2rec"), _stream("ref", "mamba2rec"), rtol=1e-5, atol=1e-5)
    assert "stream_step" in cpp_calls


@pytest.mark.parametrize("op", sorted(RUNNERS))
def test_fused_on_cpu_raises_with_the_install_hint(op):
    with pytest.raises(kernels.KernelUnavailable, match="requirements-gpu"):
        RUNNERS[op]("fused")


@pytest.mark.parametrize("op", sorted(RUNNERS))
def test_cpu_on_cuda_tensors_raises(op):
    with pytest.raises(kernels.KernelUnavailable, match="CPU tensors"):
        kernels.resolve("cpu", op, torch.device("cuda"))
    assert kernels.path_name("cpu", op, "cuda") == "unavailable"


@pytest.mark.parametrize("op", CPP_OPS)
def test_unavailable_cpu_raises_with_the_hint_and_auto_falls_back(op, monkeypatch):
    monkeypatch.setenv("SSMREC_DISABLE_CPU_EXT", "1")
    with pytest.raises(kernels.KernelUnavailable, match="SSMREC_DISABLE_CPU_EXT is set.*ninja"):
        RUNNERS[op]("cpu")
    assert kernels.resolve("auto", op, torch.device("cpu")) == "ref"
    for a, b in zip(_flat(RUNNERS[op]("auto")), _flat(RUNNERS[op]("ref")), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_auto_takes_the_cpp_kernel_on_cpu_and_logs_once(monkeypatch, caplog, cpp_calls):
    _need("selective_scan")
    _need("ssd")
    monkeypatch.setattr(kernels, "_logged", set())
    with caplog.at_level(logging.INFO, logger=kernels.__name__):
        for _ in range(3):
            _scan("auto")
            _conv("auto")
            _ssd("auto")
    msgs = [r.getMessage() for r in caplog.records if r.name == kernels.__name__]
    assert sorted(msgs) == ["kernel='auto' for causal_conv1d on cpu -> ref (no C++ kernel for causal_conv1d)",
                            "kernel='auto' for selective_scan on cpu -> cpu",
                            "kernel='auto' for ssd on cpu -> cpu"]
    assert "selective_scan" in cpp_calls and "ssd" in cpp_calls
    assert kernels.path_name("auto", "selective_scan", "cpu") == "cpu-ext"
    assert kernels.path_name("auto", "ssd", "cpu") == "cpu-ext"


def test_auto_streaming_takes_the_cpp_step_and_logs_once(monkeypatch, caplog):
    _need("stream_step")
    monkeypatch.setattr(kernels, "_logged", set())
    with caplog.at_level(logging.INFO, logger=kernels.__name__):
        model = _stream_model("mamba4rec", "auto")
        state = model.allocate_inference_state(1)
        for item in (3, 4, 5):
            _, state = streaming.update(model, state, torch.tensor([item]))
    assert streaming.fused_stepper(model) is not None
    msgs = [r.getMessage() for r in caplog.records if r.name == kernels.__name__ and "stream_step" in r.getMessage()]
    assert msgs == ["kernel='auto' for stream_step on cpu -> cpu"]


def test_unknown_choices_are_refused():
    with pytest.raises(ValueError, match="'auto', 'ref', 'cpu', 'fused'"):
        kernels.resolve("cuda", "ssd")
    with pytest.raises(ValueError, match="unknown op"):
        kernels.resolve("ref", "attention")
    with pytest.raises(ConfigError, match="not one of"):
        build_model("mamba4rec", n_items=10, max_len=8, overrides={"kernel": "cuda"})
    assert build_model("mamba2rec", n_items=10, max_len=8, overrides={"kernel": "cpu"}).config.kernel == "cpu"


def test_the_build_message_names_no_folder_of_this_machine(monkeypatch, tmp_path):
    """The extension-build warning lands in executed notebooks (committed reports): it names the cache folder by its
    variable or ~, not by this machine's absolute path."""
    from ssmrec_lib.ssm.cpu_ext import shown_build_dir

    monkeypatch.setenv("SSMREC_CACHE_DIR", str(tmp_path))
    assert shown_build_dir("ssmrec_x_1") == "$SSMREC_CACHE_DIR/torch_extensions/ssmrec_x_1"
    monkeypatch.delenv("SSMREC_CACHE_DIR")
    assert shown_build_dir("ssmrec_x_1") == "~/.cache/ssmrec/torch_extensions/ssmrec_x_1"
    assert str(tmp_path) not in shown_build_dir("ssmrec_x_1")
