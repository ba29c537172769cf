"""fused_ce.chunked_linear_cross_entropy == F.cross_entropy(model.score(h)) in value and gradient; the objectives
and the Trainer with ce_chunk > 0 and with bf16 autocast train (finite, decreasing loss)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ssmrec_lib.config import ConfigError
from ssmrec_lib.fused_ce import chunked_linear_cross_entropy
from ssmrec_lib.models.registry import build_model
from ssmrec_lib.objectives import make_objective


def reference(h, w, t, reduction="mean"):
    z = h @ w.t()
    z[:, 0] = float("-inf")
    return F.cross_entropy(z.float(), t, reduction=reduction)


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_value_and_gradients_equal_the_unfused_ce(chunk, reduction):
    g = torch.Generator().manual_seed(0)
    n, v, d = 45, 31, 8  # n not a multiple of the chunk
    h0 = torch.randn(n, d, generator=g, dtype=torch.float64)
    w0 = torch.randn(v, d, generator=g, dtype=torch.float64)
    t = torch.randint(1, v, (n,), generator=g)
    grads = []
    for fn in (reference, lambda h, w, t, r: chunked_linear_cross_entropy(h, w, t, chunk, r)):
        h, w = h0.clone().requires_grad_(), w0.clone().requires_grad_()
        loss = fn(h, w, t, reduction)
        (loss * 2.5).backward()  # an upstream gradient other than 1 reaches both inputs
        grads.append((loss.detach(), h.grad, w.grad))
    for a, b in zip(*grads):
        torch.testing.assert_close(a.double(), b.double(), rtol=1e-5, atol=1e-5)  # fp32 softmax rounding
    assert grads[1][2][0].abs().max() == 0  # padding column: probability 0, no gradient


def test_objective_loss_equal_with_and_without_chunks():
    torch.manual_seed(0)
    train = [np.arange(1, 12) % 9 + 1, np.arange(3, 9), np.arange(1, 30) % 9 + 1]
    net = build_model("sasrec", 9, 10, {"d_model": 16, "n_layers": 1, "n_heads": 1}).eval()  # no dropout draws
    whole, chunked = (make_objective("next_item", train, 10, windows="all", ce_chunk=c) for c in (0, 5))
    batch = whole.batch(whole.epoch_samples(np.random.default_rng(0)))
    grads = []
    for obj in (whole, chunked):
        net.zero_grad()
        loss = obj.loss(net, batch)
        loss.backward()
        grads.append((loss.detach(), net.item_emb.weight.grad.clone()))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grads[0][1], grads[1][1], rtol=1e-4, atol=1e-6)
    with pytest.raises(ConfigError, match="ce_chunk"):
        make_objective("next_item", train, 10, ce_chunk=-1)


@pytest.mark.parametrize("over", [{"bf16": True}, {"bf16": True, "ce_chunk": 64}])
def test_bf16_and_chunked_paths_train(over):
    from ssmrec_lib.experiment import load_data, resolve_configs
    from ssmrec_lib.config import to_dict
    from ssmrec_lib.train import Trainer
    from dataclasses import replace

    data = load_data("synthetic")
    split = data.split()
    cfg, mc = resolve_configs("sasrec", "synthetic", "smoke", 0, {**over, "lr": 5e-3})
    cfg = replace(cfg, epochs=4, progress=False, max_batches_per_epoch=6, patience=10)
    torch.manual_seed(0)
    net = build_model("sasrec", split.n_items, cfg.max_len, to_dict(mc))
    losses = []
    Trainer(net, split, cfg, hooks=[lambda ev, info: losses.append(info["loss"]) if ev == "epoch_end" else None],
            score_test=False).fit()
    assert len(losses) == 4 and all(np.isfinite(losses))
    assert losses[-1] < losses[0]
