"""Sampled softmax with logQ correction (losses.py): exactness, accidental hits, gradient vs the full softmax,
the trainer option and the run identity."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ssmrec_lib.config import ConfigError
from ssmrec_lib.data import make_synthetic
from ssmrec_lib.distributed import Dist, rows
from ssmrec_lib.experiment import run_identity
from ssmrec_lib.losses import SampledSoftmax, item_counts, sampled_softmax_ce
from ssmrec_lib.models.registry import build_model
from ssmrec_lib.objectives import NextItemCE, make_objective
from ssmrec_lib.train import TrainConfig, Trainer

N_ITEMS, D, ROWS = 200, 16, 16


@pytest.fixture(scope="module")
def catalogue():
    """A small catalogue whose scores follow popularity (as a trained model's do): Zipf counts, item norms rising
    with log count, random states h and positives drawn by popularity."""
    g = torch.Generator().manual_seed(0)
    zipf = np.arange(1, N_ITEMS + 1) ** -1.1
    counts = np.concatenate([[0], np.round(20000 * zipf / zipf.sum())]).astype(np.int64)
    w = torch.randn(N_ITEMS + 1, D, generator=g) * 0.5
    w[1:] += 0.3 * torch.log(torch.tensor(counts[1:] + 1.0))[:, None] / D ** 0.5
    h = torch.randn(ROWS, D, generator=g)
    y = torch.multinomial(torch.tensor(counts[1:] + 1.0), ROWS, replacement=True, generator=g) + 1
    return counts, w, h, y


def full_ce(h, y, w):
    logits = h @ w.t()  # as SequentialModel.score: column 0 (padding) is -inf
    logits[:, 0] = float("-inf")
    return F.cross_entropy(logits, y)


def grads(loss_fn, h, w):
    """d loss / d(h, E), flattened into one vector."""
    h, w = h.clone().requires_grad_(), w.clone().requires_grad_()
    loss_fn(h, w).backward()
    return torch.cat([h.grad.flatten(), w.grad.flatten()])


def mean_sampled_grad(crit: SampledSoftmax, h, y, w, draws=300, seed=1):
    gen = torch.Generator().manual_seed(seed)
    total = 0
    for _ in range(draws):
        ids = crit.draw(y, gen)
        log_q = crit.log_expected_count(ids) if crit.correct else None
        total = total + grads(lambda hh, ww: sampled_softmax_ce(hh, y, ww, ids, log_q), h, w)
    return total / draws


def cosine(a, b):
    return float(F.cosine_similarity(a, b, dim=0))


def test_whole_catalogue_without_replacement_is_exactly_full_ce(catalogue):
    """S = every item once: K Q(i) = 1, the correction is 0, the positive's duplicate column is masked."""
    counts, w, h, y = catalogue
    ids = torch.randperm(N_ITEMS) + 1
    uniform = SampledSoftmax("uniform", N_ITEMS, counts)
    log_q = uniform.log_expected_count(ids)
    assert torch.allclose(log_q, torch.zeros(N_ITEMS), atol=1e-6)
    sampled = sampled_softmax_ce(h, y, w, ids, log_q)
    assert torch.allclose(sampled, full_ce(h, y, w), rtol=1e-6, atol=1e-6)
    g_full = grads(lambda hh, ww: full_ce(hh, y, ww), h, w)
    g_samp = grads(lambda hh, ww: sampled_softmax_ce(hh, y, ww, ids, log_q), h, w)
    assert torch.allclose(g_samp, g_full, atol=1e-6)
    assert torch.allclose(sampled_softmax_ce(h, y, w, ids, log_q, "sum"), full_ce(h, y, w) * ROWS, rtol=1e-5)


def test_accidental_hits_are_masked(catalogue):
    """A negative equal to a row's positive adds nothing to that row's loss; other rows still see it."""
    _, w, h, y = catalogue
    others = torch.tensor([i for i in range(1, 30) if i not in y.tolist()][:10])
    hit = torch.cat([others, y[:1]])  # the first row's positive drawn as a negative
    per_row = sampled_softmax_ce(h[:1], y[:1], w, hit, None)
    assert torch.allclose(per_row, sampled_softmax_ce(h[:1], y[:1], w, others, None))
    assert per_row.item() > 0
    row2 = (y != y[0]).nonzero()[0]
    with_it = sampled_softmax_ce(h[row2], y[row2], w, hit, None)
    assert with_it > sampled_softmax_ce(h[row2], y[row2], w, others, None)  # not masked where it is no hit
    # every draw of the positive masked: the loss is 0 (only the positive's column is left)
    assert sampled_softmax_ce(h[:1], y[:1], w, y[:1].repeat(5), None).item() == pytest.approx(0.0, abs=1e-7)


def test_uniform_sampled_gradient_approaches_full_ce_gradient(catalogue):
    """Averaged over 300 draws, uniform + logQ at K = n/2 points where the full-softmax gradient does
    (measured 0.995; tolerance cosine > 0.98), and closer than with K = 20 (0.974)."""
    counts, w, h, y = catalogue
    g_full = grads(lambda hh, ww: full_ce(hh, y, ww), h, w)
    big = cosine(mean_sampled_grad(SampledSoftmax("uniform", N_ITEMS // 2, counts), h, y, w), g_full)
    small = cosine(mean_sampled_grad(SampledSoftmax("uniform", 20, counts), h, y, w), g_full)
    assert big > 0.98
    assert small < big


def test_popularity_sampler_needs_the_logq_correction(catalogue):
    """With a popularity proposal, dropping logQ over-weights popular negatives: the mean gradient's cosine with
    the full one falls (measured 0.964 with, 0.889 without at K = 20) and its relative error grows."""
    counts, w, h, y = catalogue
    g_full = grads(lambda hh, ww: full_ce(hh, y, ww), h, w)
    with_q = mean_sampled_grad(SampledSoftmax("popularity", 20, counts), h, y, w)
    without = mean_sampled_grad(SampledSoftmax("popularity", 20, counts, log_q=False), h, y, w)
    assert cosine(with_q, g_full) > 0.95
    assert cosine(with_q, g_full) > cosine(without, g_full) + 0.04
    rel = lambda g: float((g - g_full).norm() / g_full.norm())
    assert rel(without) > 1.4 * rel(with_q)


def test_samplers_draw_from_their_proposal(catalogue):
    counts, _, _, y = catalogue
    gen = torch.Generator().manual_seed(0)
    inb = SampledSoftmax("in_batch", 50, counts)
    ids = inb.draw(y, gen)
    assert set(ids.tolist()) <= set(y.tolist())
    p = counts / counts.sum()
    assert np.allclose(inb.log_expected_count(ids).numpy(), np.log(50 * p[ids.numpy()]), rtol=1e-5)
    pop = SampledSoftmax("popularity", 20000, counts)
    draws = pop.draw(y, gen)
    assert draws.min() >= 1 and draws.max() <= N_ITEMS
    top = int(np.argmax(counts))
    assert (draws == top).float().mean().item() == pytest.approx((counts[top] + 1) / (counts[1:] + 1).sum(), rel=0.1)
    uni = SampledSoftmax("uniform", 7, counts)
    assert torch.allclose(uni.log_expected_count(torch.tensor([1, 5])), torch.full((2,), float(np.log(7 / N_ITEMS))))
    with pytest.raises(ConfigError, match="sampler"):
        SampledSoftmax("nope", 5, counts)


def test_item_counts():
    assert item_counts([np.array([1, 2, 2]), np.array([3])], 4).tolist() == [0, 1, 2, 1, 0]


def test_objective_uses_the_criterion_and_never_scores_the_catalogue():
    train = [np.array([3, 5, 7, 2]), np.array([4, 1]), np.array([9, 8, 6, 5, 4, 3])]
    torch.manual_seed(0)
    model = build_model("sasrec", 9, 4, dict(d_model=8, d_ff=16, n_layers=1, n_heads=1, dropout=0.0,
                                             attn_dropout=0.0))
    obj = NextItemCE(train, max_len=4)
    b = obj.batch(np.arange(3))
    full = obj.loss(model, b)
    obj.criterion = SampledSoftmax("uniform", 9, item_counts(train, 9))

    def no_score(h):
        raise AssertionError("the sampled softmax must not form the full logits")

    model.score = no_score  # an instance attribute: the class's score (the tied table) is what the check reads
    sampled = obj.loss(model, b, torch.Generator().manual_seed(0))
    assert torch.isfinite(sampled) and sampled.item() != pytest.approx(full.item())


@pytest.mark.parametrize("objective,model,sampler", [("next_item", "sasrec", "uniform"),
                                                     ("cloze", "bert4rec", "popularity")])
def test_sampled_shard_losses_sum_to_the_batch_loss(objective, model, sampler):
    """Data-parallel shares: every rank draws the same negatives from the per-batch generator, so the shares add
    up to the one-process sampled loss (losses.py docstring)."""
    split = make_synthetic(n_users=40, n_items=60, min_len=5, max_len=15, seed=0).split()
    torch.manual_seed(0)
    net = build_model(model, split.n_items, 12, dict(d_model=16, dropout=0.0, n_layers=1, n_heads=1, d_ff=32,
                                                     attn_dropout=0.0))
    obj = make_objective(objective, split.train, 12)
    obj.criterion = SampledSoftmax(sampler, 25, item_counts(split.train, split.n_items))
    batch = obj.batch(obj.epoch_samples(np.random.default_rng(0))[:6])
    gen = lambda: torch.Generator().manual_seed(7)  # noqa: E731
    whole = obj.loss(net, batch, gen())
    parts = [obj.shard_loss(net, batch, rows(batch.size, Dist(3, r, r, "gloo")), gen()) for r in range(3)]
    total = sum(p for p, _ in parts if p is not None) / parts[0][1]
    torch.testing.assert_close(total, whole, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(obj.loss(net, batch, torch.Generator().manual_seed(8)), whole)  # draws matter


def test_config_and_identity():
    with pytest.raises(ConfigError, match="loss=sampled_softmax"):
        TrainConfig(n_sampled=50)
    with pytest.raises(ConfigError, match="n_sampled"):
        TrainConfig(loss="sampled_softmax", n_sampled=0)
    ce = {k: v for k, v in vars(TrainConfig()).items()}
    old = {k: v for k, v in ce.items() if k not in ("loss", "n_sampled", "sampler")}  # a config before the option
    ident = lambda t: run_identity("sasrec", 0, t, {}, "next_item", "f", {})
    assert ident(ce) == ident(old)  # today's runs keep their identity
    sampled = {**ce, "loss": "sampled_softmax", "sampler": "popularity"}
    assert ident(sampled) != ident(ce)
    assert {"loss", "n_sampled", "sampler"} <= set(ident(sampled)["train_config"])


def test_sampled_softmax_model_learns_beyond_pop():
    """A tiny SASRec trained with 30 popularity negatives of 300 items beats Pop on validation NDCG@10 (the
    synthetic transitions are invisible to Pop; full CE gains +0.15..0.17 here: test_train.py)."""
    split = make_synthetic(n_users=300, n_items=300, min_len=5, max_len=25, seed=0).split()
    cfg = TrainConfig(epochs=20, patience=20, batch_size=32, lr=5e-3, max_len=20, progress=False, num_threads=1,
                      loss="sampled_softmax", n_sampled=30, sampler="popularity")
    pop = Trainer(build_model("pop", split.n_items, 20), split, cfg).fit()
    torch.manual_seed(0)
    net = build_model("sasrec", split.n_items, 20, dict(d_model=32, d_ff=64, n_layers=1, n_heads=1, dropout=0.2,
                                                        attn_dropout=0.2))
    r = Trainer(net, split, cfg).fit()
    assert r["valid"]["ndcg@10"] > pop["valid"]["ndcg@10"] + 0.08
