"""Streaming inference: a prefilled state plus k new events gives exactly the full forward's read-out."""

import pytest
import torch

from ssmrec_lib import streaming
from ssmrec_lib.models.registry import build_model
from ssmrec_lib.stream_bench import bench_streaming

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
