"""Streaming inference: a prefilled state plus k new events gives exactly the full forward's read-out."""

import pytest
import torch

from ssmrec_lib import streaming
from ssmrec_lib.models.registry import build_model
from ssmrec_lib.ssm import kernels
from ssmrec_lib.bench.streaming import bench_streaming

CASES = [
    ("mamba4rec", {}), ("mamba4rec", {"n_layers": 2}), ("mamba2rec", {}), ("lrurec", {}), ("gru4rec", {}),
    ("sasrec", {"positions": "left"}), ("sasrec", {"positions": "left", "norm_first": False}),
]


@pytest.mark.parametrize("name,overrides", CASES, ids=[f"{n}{'-' + str(o) if o else ''}" for n, o in CASES])
def test_streaming_equals_full_forward(name, overrides):
    torch.manual_seed(0)
    model = build_model(name, n_items=60, max_len=40, overrides=overrides).eval()
    history = torch.randint(1, 61, (3, 25))
    assert streaming.check_equal(model, history, k=4) < 1e-4
    # and the scores a recommender serves are the same
    _, state = streaming.prefill(model, history[:, :-1])
    h, _ = streaming.update(model, state, history[:, -1])
    want = model.score(streaming.reencode(model, history))
    torch.testing.assert_close(model.score(h), want, rtol=1e-4, atol=1e-4)


def test_left_positions_do_not_change_with_padding():
    torch.manual_seed(0)
    model = build_model("sasrec", n_items=30, max_len=20, overrides={"positions": "left"}).eval()
    seq = torch.randint(1, 31, (1, 6))
    padded = torch.cat([torch.zeros(1, 5, dtype=torch.long), seq], dim=1)
    a = model.readout(seq, torch.tensor([6]))
    b = model.readout(padded, torch.tensor([6]))
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,overrides,why", [
    ("sasrec", {}, "right-anchored"), ("hydra4rec", {}, "bidirectional"), ("bert4rec", {}, "bidirectional")])
def test_models_without_a_streaming_form_say_why(name, overrides, why):
    with pytest.raises(streaming.NotStreamable, match=why):
        streaming.kind(build_model(name, n_items=10, max_len=8, overrides=overrides))


def test_recurrent_state_size_does_not_grow_with_history():
    torch.manual_seed(0)
    model = build_model("mamba4rec", n_items=20, max_len=200).eval()
    sizes = [streaming.state_bytes(streaming.prefill(model, torch.randint(1, 21, (2, n)))[1]) for n in (5, 50)]
    assert sizes[0] == sizes[1] > 0
    kv = build_model("sasrec", n_items=20, max_len=200, overrides={"positions": "left"}).eval()
    kv_sizes = [streaming.state_bytes(streaming.prefill(kv, torch.randint(1, 21, (2, n)))[1]) for n in (5, 50)]
    assert kv_sizes[1] == 10 * kv_sizes[0]  # a key/value cache grows linearly with the history


def test_bench_streaming_reports_every_model_and_length():
    df = bench_streaming(["mamba4rec", "sasrec"], [8, 16], n_items=50, repeats=2, log=lambda *_: None)
    assert len(df) == 4 and set(df["status"]) == {"ok"}
    assert (df["update_ms"] > 0).all() and (df["reencode_ms"] > 0).all()


FUSED_CASES = [("mamba4rec", {}), ("mamba4rec", {"n_layers": 2}), ("mamba2rec", {}),
               ("mamba2rec", {"n_layers": 2, "ngroups": 2, "headdim": 16})]


@pytest.mark.parametrize("name,overrides", FUSED_CASES, ids=[f"{n}{'-' + str(o) if o else ''}" for n, o in FUSED_CASES])
def test_fused_cpu_step_equals_python_step(name, overrides):
    from ssmrec_lib.ssm import fused_step

    if not fused_step.available():
        pytest.skip(fused_step.unavailable_reason())
    torch.manual_seed(0)
    model = build_model(name, n_items=50, max_len=64, overrides=overrides).eval()
    with torch.no_grad():  # move every weight off its init (zero biases, unit norms) so each term is exercised
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    history = torch.randint(1, 51, (3, 24))  # batch 3, and columns of a (B, L) tensor are strided
    _, py = streaming.prefill(model, history[:, :16])
    fu = py
    for t in range(16, 24):
        h_py, py = streaming.update(model, py, history[:, t], fused=False)
        h_fu, fu = streaming.update(model, fu, history[:, t], fused=True)
        torch.testing.assert_close(h_fu, h_py, rtol=1e-5, atol=1e-5)
    for a, b in zip(fu, py):  # the states agree too, so the paths can be mixed
        for x, y in zip(a if isinstance(a, tuple) else (a.conv_state, a.ssm_state),
                        b if isinstance(b, tuple) else (b.conv_state, b.ssm_state)):
            torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)


def test_fused_step_follows_weight_changes():
    from ssmrec_lib.ssm import fused_step

    if not fused_step.available():
        pytest.skip(fused_step.unavailable_reason())
    torch.manual_seed(0)
    model = build_model("mamba4rec", n_items=20, max_len=16).eval()
    item = torch.tensor([3, 7])
    state = model.allocate_inference_state(2)
    before, _ = streaming.update(model, state, item, fused=True)
    with torch.no_grad():
        model.layers[0].ffn.w2.bias.add_(1.0)  # an optimiser step is an in-place update like this one
    after, _ = streaming.update(model, state, item, fused=True)
    want, _ = streaming.update(model, state, item, fused=False)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, want, rtol=1e-5, atol=1e-5)


def test_fused_step_refuses_models_it_does_not_cover():
    with pytest.raises(kernels.KernelUnavailable, match="covers Mamba4Rec / 2Mamba4Rec; gru4rec is neither"):
        streaming.update(build_model("gru4rec", n_items=10, max_len=8).eval(),
                         build_model("gru4rec", n_items=10, max_len=8).allocate_inference_state(1),
                         torch.tensor([1]), fused=True)


@pytest.mark.parametrize("name", ["mamba4rec", "mamba2rec"])
def test_streaming_step_follows_the_kernel_switch(name, monkeypatch):
    """ref: the Python step, the extension never loaded; cpu: the C++ step, same read-out; auto: the C++ step on
    CPU where it builds."""
    from ssmrec_lib.ssm import cpu_ext, fused_step

    torch.manual_seed(0)
    models = {k: build_model(name, n_items=40, max_len=32, overrides={"kernel": k}).eval()
              for k in ("ref", "cpu", "auto")}
    for k in ("cpu", "auto"):
        models[k].load_state_dict(models["ref"].state_dict())
    history = torch.randint(1, 41, (2, 12))
    steps = []
    real_update = fused_step.FusedStep.update
    monkeypatch.setattr(fused_step.FusedStep, "update", lambda self, *a: steps.append(1) or real_update(self, *a))
    real_module = cpu_ext.module

    def no_cpp(op):
        raise AssertionError(f"kernel='ref' reached the C++ extension ({op})")

    monkeypatch.setattr(cpu_ext, "module", no_cpp)
    h_ref, _ = streaming.prefill(models["ref"], history)
    assert streaming.fused_stepper(models["ref"]) is None and not steps
    with pytest.raises(kernels.KernelUnavailable, match="kernel='ref' rules it out"):
        streaming.update(models["ref"], models["ref"].allocate_inference_state(2), history[:, 0], fused=True)
    monkeypatch.setattr(cpu_ext, "module", real_module)
    if not fused_step.available():
        pytest.skip(fused_step.unavailable_reason())
    for k in ("cpu", "auto"):
        steps.clear()
        h, _ = streaming.prefill(models[k], history)
        assert len(steps) == history.shape[1], k  # every event went through the C++ step
        torch.testing.assert_close(h, h_ref, rtol=1e-5, atol=1e-5)
        steps.clear()
        streaming.update(models[k], models[k].allocate_inference_state(2), history[:, 0], fused=False)
        assert not steps  # fused=False: the Python step


def test_explicit_cpu_step_raises_where_it_cannot_run():
    model = build_model("mamba4rec", n_items=20, max_len=16, overrides={"kernel": "cpu"})
    state = model.allocate_inference_state(1)
    with pytest.raises(kernels.KernelUnavailable, match="training mode"):
        streaming.update(model.train(), state, torch.tensor([1]))
    with pytest.raises(kernels.KernelUnavailable, match="float32"):
        streaming.update(model.eval().double(), model.allocate_inference_state(1), torch.tensor([1]))
    with pytest.raises(kernels.KernelUnavailable, match="requirements-gpu"):
        streaming.update(build_model("mamba4rec", n_items=20, max_len=16, overrides={"kernel": "fused"}).eval(),
                         state, torch.tensor([1]))


def test_fused_step_is_dropped_when_the_model_changes_dtype():
    from ssmrec_lib.ssm import fused_step

    if not fused_step.available():
        pytest.skip(fused_step.unavailable_reason())
    model = build_model("mamba4rec", n_items=20, max_len=16).eval()
    assert streaming.fused_stepper(model) is not None
    model.double()  # new storage: the float32 packed weights no longer apply
    assert streaming.fused_stepper(model) is None
    model.float()
    assert streaming.fused_stepper(model) is not None
