import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ssmrec_lib.cli import main as cli_main
from ssmrec_lib.config import ConfigError
from ssmrec_lib.data import make_synthetic
from ssmrec_lib.models.registry import build_model
from ssmrec_lib.objectives import LastItemCE, NextItemCE
from ssmrec_lib.train import NonFiniteLossError, TrainConfig, Trainer, lr_lambda, param_groups
from ssmrec_lib.experiment import route_overrides, run_experiment

TINY = {"sasrec": dict(d_model=16, d_ff=32, n_layers=1, n_heads=1, dropout=0.2, attn_dropout=0.2),
        "bert4rec": dict(d_model=16, d_ff=32, n_layers=1, n_heads=1, dropout=0.2, attn_dropout=0.2),
        "gru4rec": dict(d_model=16, hidden_size=16, dropout=0.2)}


@pytest.fixture(scope="module")
def split():
    return make_synthetic(n_users=160, n_items=80, min_len=5, max_len=25, seed=0).split()


def _cfg(**kw):
    # one thread: these models are tiny, and a second thread only waits on a shared 2-core machine
    base = dict(epochs=3, batch_size=32, lr=3e-3, max_len=20, progress=False, patience=5, num_threads=1)
    return TrainConfig(**{**base, **kw})


def test_next_item_loss_equals_full_logits_loss_with_padding_ignored():
    """Gathering real positions first gives the same loss as scoring every position and ignoring padding."""
    torch.manual_seed(0)
    train = [np.array([3, 5, 7, 2]), np.array([4, 1]), np.array([9, 8, 6, 5, 4, 3])]
    obj = NextItemCE(train, max_len=4)
    b = obj.batch(np.arange(3))
    assert b.lengths.tolist() == [3, 1, 4]
    assert b.targets[0, -3:].tolist() == [5, 7, 2] and b.item_seq[0, -3:].tolist() == [3, 5, 7]
    assert b.item_seq[2].tolist() == [8, 6, 5, 4] and b.targets[2].tolist() == [6, 5, 4, 3]  # last 5 items
    m = build_model("sasrec", 10, 4, TINY["sasrec"]).eval()
    logits = m.score(m(b.item_seq, b.lengths))  # (B, L, n_items + 1)
    tgt = b.targets.masked_fill(b.item_seq == 0, 0)  # a target whose input is padding is not a sample
    ref = F.cross_entropy(logits.reshape(-1, 11), tgt.reshape(-1), ignore_index=0)
    torch.testing.assert_close(obj.loss(m, b), ref)


def test_last_item_prefix_sampling():
    train = [np.arange(1, 11), np.arange(1, 4), np.array([5])]
    obj = LastItemCE(train, max_len=4, prefixes_per_user=0)
    assert len(obj.epoch_samples(np.random.default_rng(0))) == 9 + 2  # every prefix; user 2 too short
    obj3 = LastItemCE(train, max_len=4, prefixes_per_user=3)
    ids = obj3.epoch_samples(np.random.default_rng(0))
    assert len(ids) == 3 + 2 and len(set(ids.tolist())) == len(ids)
    b = obj3.batch(ids)
    for row, n, t in zip(b.item_seq, b.lengths, b.targets):  # history = the items right before the target
        assert row[-1].item() == t.item() - 1 and n <= 4


def test_length_bucketing_covers_every_sample_once_and_pads_less(split):
    obj = NextItemCE(split.train, max_len=20)
    plain = Trainer(build_model("pop", split.n_items, 20), split, _cfg(batch_size=16, bucket_window=0))
    bucketed = Trainer(build_model("pop", split.n_items, 20), split, _cfg(batch_size=16, bucket_window=4))
    for tr in (plain, bucketed):
        batches = tr.epoch_batches(obj, 3)
        assert sorted(np.concatenate(batches).tolist()) == sorted(obj.users.tolist())
        assert all(np.array_equal(a, b) for a, b in zip(batches, tr.epoch_batches(obj, 3)))  # (seed, epoch) only
    slots = lambda bs: sum(len(b) * obj.lengths(b).max() for b in bs)  # noqa: E731
    assert slots(bucketed.epoch_batches(obj, 3)) < 0.9 * slots(plain.epoch_batches(obj, 3))


def test_lr_schedule_warmup_and_cosine():
    f = lr_lambda(TrainConfig(warmup_steps=10, schedule="cosine", min_lr_ratio=0.1), total_steps=110)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(60) == pytest.approx(0.55) and f(110) == pytest.approx(0.1)


def test_causal_model_beats_pop():
    """Synthetic data has item-to-item transitions that Pop cannot use (seeds 0-2 gave +0.15..0.17 NDCG@10)."""
    split = make_synthetic(n_users=300, n_items=300, min_len=5, max_len=25, seed=0).split()
    cfg = _cfg(epochs=20, patience=20, lr=5e-3)
    pop = Trainer(build_model("pop", split.n_items, 20), split, cfg).fit()
    torch.manual_seed(0)
    r = Trainer(build_model("sasrec", split.n_items, 20, {**TINY["sasrec"], "d_model": 32, "d_ff": 64}),
                split, cfg).fit()
    assert r["valid"]["ndcg@10"] > pop["valid"]["ndcg@10"] + 0.08
    assert r["test"]["ndcg@10"] > pop["test"]["ndcg@10"] + 0.08
    assert 0 <= r["best_epoch"] < r["epochs_run"] == 20


@pytest.mark.parametrize("name", ["sasrec", "bert4rec", "gru4rec", "lrurec", "mamba4rec", "mamba2rec", "hydra4rec"])
def test_every_model_trains_with_its_objective(split, name):
    """Smoke profile config, 2 steps: every model trains with the objective it resolves to (cloze for the
    bidirectional ones) and is scored by the same evaluation path (test NDCG@10 in [0, 1], every user)."""
    from ssmrec_lib.profiles import profile_overrides

    _, over = profile_overrides("smoke", name, "synthetic")
    torch.manual_seed(0)
    r = Trainer(build_model(name, split.n_items, 20, over), split, _cfg(epochs=1, max_batches_per_epoch=2)).fit()
    assert r["objective"] == ("cloze" if name in ("bert4rec", "hydra4rec") else "next_item")
    assert 0 <= r["test"]["ndcg@10"] <= 1 and r["test"]["n_users"] == len(split.train)


def _mamba(n_items=30):
    torch.manual_seed(0)
    return build_model("mamba4rec", n_items, 20, dict(d_model=16, d_ff=32, d_state=8, kernel="ref"))


def test_flagged_parameters_are_not_decayed():
    """AdamW with weight_decay > 0 and zero gradients: only decay moves a parameter; the `_no_weight_decay` ones
    (Mamba's A_log, D) stay put, the others shrink."""
    m = _mamba()
    flagged = {n for n, p in m.named_parameters() if getattr(p, "_no_weight_decay", False)}
    assert flagged and all(n.endswith(("A_log", "D")) for n in flagged)
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    opt = torch.optim.AdamW(param_groups(m, 0.5), lr=0.1, weight_decay=0.5)
    for p in m.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for n, p in m.named_parameters():
        if n in flagged:
            assert torch.equal(p, before[n]), n
        elif before[n].abs().sum() > 0:
            assert not torch.equal(p, before[n]), n
    assert [g["weight_decay"] for g in opt.param_groups] == [0.5, 0.0]


def test_trainer_honours_no_weight_decay(split):
    torch.manual_seed(0)
    t = Trainer(_mamba(split.n_items), split, _cfg(epochs=1, max_batches_per_epoch=1, optimizer="adamw",
                                                   weight_decay=0.1))
    t.fit()
    groups = t.opt.param_groups
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    assert all(getattr(p, "_no_weight_decay", False) for p in groups[1]["params"])


@pytest.mark.parametrize("opt_cls", [torch.optim.Adam, torch.optim.AdamW])
def test_zero_weight_decay_optimizer_is_the_single_group_one_bit_for_bit(opt_cls):
    """weight_decay == 0: the same single group as before the exemption existed, and one step gives the same
    parameters bit for bit as the plain list of trainable parameters."""
    a, b = _mamba(), _mamba()
    assert param_groups(a, 0.0) == [p for p in a.parameters() if p.requires_grad]
    x = torch.randint(1, 31, (4, 12))
    lengths = torch.full((4,), 12)
    opts = [opt_cls(param_groups(a, 0.0), lr=1e-2, weight_decay=0.0),
            opt_cls([p for p in b.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.0)]
    for m, opt in zip((a, b), opts):
        m.train()
        torch.manual_seed(1)
        m.score(m.readout(x, lengths)).logsumexp(-1).mean().backward()
        opt.step()
    assert len(opts[0].param_groups) == 1
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), n


class Kill(Exception):
    pass


@pytest.mark.parametrize("name,objective", [("sasrec", "next_item"), ("bert4rec", "cloze"), ("gru4rec", "last_item")])
def test_resume_after_kill_mid_epoch_gives_identical_metrics(split, tmp_path, name, objective):
    cfg = _cfg(objective=objective, checkpoint_every=2, batch_size=40 if objective != "last_item" else 256,
               max_batches_per_epoch=5)

    def run(run_dir, hooks=()):
        torch.manual_seed(cfg.seed)
        return Trainer(build_model(name, split.n_items, 20, TINY[name]), split, cfg, run_dir, list(hooks)).fit()

    ref = run(tmp_path / "ref")

    def kill(event, info):
        if event == "batch_end" and info["epoch"] == 1 and info["batch"] == 2:
            raise Kill

    with pytest.raises(Kill):
        run(tmp_path / "resumed", [kill])
    ck = torch.load(tmp_path / "resumed" / "checkpoint_last.pt", weights_only=True)
    assert (ck["state"]["epoch"], ck["state"]["batch"]) == (1, 2)  # mid-epoch checkpoint
    torch.manual_seed(123)  # resuming must not depend on the fresh process's RNG
    res = run(tmp_path / "resumed")
    assert res["valid"] == ref["valid"] and res["test"] == ref["test"] and res["best_epoch"] == ref["best_epoch"]
    strip = lambda p: [{k: v for k, v in json.loads(ln).items() if "seconds" not in k}  # noqa: E731
                       for ln in p.read_text().splitlines()]
    assert strip(tmp_path / "resumed" / "log.jsonl") == strip(tmp_path / "ref" / "log.jsonl")


def test_non_finite_loss_stops_with_clear_error_and_keeps_good_checkpoint(split, tmp_path):
    torch.manual_seed(0)
    model = build_model("sasrec", split.n_items, 20, TINY["sasrec"])

    def poison(event, info):
        if event == "batch_end" and info["epoch"] == 0 and info["batch"] == 1:
            with torch.no_grad():
                model.item_emb.weight[1:].fill_(float("nan"))

    trainer = Trainer(model, split, _cfg(checkpoint_every=1), tmp_path, [poison])
    with pytest.raises(NonFiniteLossError, match=r"epoch 0, batch 2.*checkpoint_last\.pt"):
        trainer.fit()
    ck = torch.load(tmp_path / "checkpoint_last.pt", weights_only=True)
    assert ck["state"]["batch"] == 2 and all(torch.isfinite(v).all() for v in ck["model"].values())


def test_sampled_evaluation_mode(split):
    pop = Trainer(build_model("pop", split.n_items, 20), split, _cfg(eval_mode="sampled", n_negatives=50)).fit()
    full = Trainer(build_model("pop", split.n_items, 20), split, _cfg()).fit()
    assert pop["test"]["hr@10"] > full["test"]["hr@10"]  # 51 candidates are easier than 80
    assert "50 uniform negatives" in pop["protocol"]["test"]["ranking"]


def test_override_routing_and_errors():
    assert route_overrides("sasrec", {"lr": "1e-3", "model.d_model": "32", "n_heads": "1"}) == (
        {"lr": "1e-3"}, {"d_model": "32", "n_heads": "1"})
    with pytest.raises(ConfigError, match=r"unknown key 'd_modle'.*model\.d_model"):
        route_overrides("sasrec", {"d_modle": "32"})
    with pytest.raises(ConfigError, match="Valid keys"):
        route_overrides("sasrec", {"train.d_model": "32"})


def test_run_experiment_writes_run_folder_and_reuses_it(tmp_path):
    data = make_synthetic(n_users=60, n_items=50, min_len=5, max_len=20, seed=0)
    r = run_experiment("gru4rec", "synthetic", "smoke", seed=1, overrides={"epochs": "1", "num_threads": "1"}, out=tmp_path, data=data)
    run_dir = tmp_path / r["run_id"]
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["train_config"]["epochs"] == 1 and cfg["model_config"]["d_model"] == 16  # profile + override
    assert cfg["protocol"]["test"]["history_masking"] is False and "environment" in cfg
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["test"]) >= {"hr@5", "ndcg@10", "mrr@20"} and metrics["protocol"]["test"]["max_len"] == 20
    assert len((run_dir / "log.jsonl").read_text().splitlines()) == 1
    called = []
    again = run_experiment("gru4rec", "synthetic", "smoke", seed=1, overrides={"epochs": "1", "num_threads": "1"}, out=tmp_path,
                           data=data, hooks=[lambda e, i: called.append(e)])
    assert not called and again["provenance"]["status"] == "reused"  # reused, not retrained
    assert {k: v for k, v in again.items() if k != "provenance"} == metrics


def test_cli_unknown_key_and_bad_value(tmp_path, capsys):
    rc = cli_main(["train", "--model", "sasrec", "--dataset", "synthetic", "--profile", "smoke",
                   "--out", str(tmp_path), "--set", "d_modle=3"])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown key 'd_modle'" in err and "model.d_model" in err
    rc = cli_main(["train", "--model", "sasrec", "--dataset", "synthetic", "--profile", "smoke",
                   "--out", str(tmp_path), "--set", "lr=abc"])
    assert rc == 2 and "lr" in capsys.readouterr().err


def test_clip_norm_trains(split):
    torch.manual_seed(0)
    res = Trainer(build_model("sasrec", split.n_items, 20, TINY["sasrec"]), split, _cfg(epochs=1, clip_norm=1.0)).fit()
    assert res["epochs_run"] == 1 and 0 <= res["valid"]["ndcg@10"] <= 1
