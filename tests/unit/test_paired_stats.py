"""Per-user test metrics saved by every run, and the paired tests between models built on them."""

import numpy as np
import pytest

from ssmrec_lib.data import make_synthetic
from ssmrec_lib.experiment import run_experiment
from ssmrec_lib.report.stats import paired_test, pairwise_table, per_user
from ssmrec_lib.report.tables import collect_runs
from ssmrec_lib.train import TEST_PER_USER

FAST = {"epochs": "2", "num_threads": "1"}


def test_runs_keep_per_user_test_metrics_whose_mean_is_the_reported_one(tmp_path):
    data = make_synthetic(n_users=50, n_items=30, min_len=5, max_len=15, seed=0)
    r = run_experiment("gru4rec", "synthetic", "smoke", 0, FAST, out=tmp_path, data=data)
    with np.load(tmp_path / r["run_id"] / TEST_PER_USER) as z:
        assert set(z.files) == {"hr@10", "ndcg@10", "mrr@10"}
        for k in z.files:
            assert z[k].shape == (50,) and z[k].mean() == pytest.approx(r["test"][k], abs=1e-6)
        assert set(np.unique(z["hr@10"])) <= {0.0, 1.0}


def test_paired_test_sees_a_shift_and_not_noise():
    rng = np.random.default_rng(0)
    a = rng.random(2000)
    same = paired_test(a, a.copy(), n_boot=500, n_perm=500)
    assert same["mean_diff"] == 0 and same["p_value"] == 1.0
    shifted = paired_test(a + 0.02, a + rng.normal(0, 0.01, 2000), n_boot=500, n_perm=500)
    assert shifted["p_value"] < 0.01 and shifted["ci_low"] > 0 and shifted["mean_diff"] == pytest.approx(0.02, abs=2e-3)
    noise = paired_test(a + rng.normal(0, 0.1, 2000), a + rng.normal(0, 0.1, 2000), n_boot=500, n_perm=500, seed=1)
    assert noise["ci_low"] < 0 < noise["ci_high"]
    with pytest.raises(ValueError, match="same users"):
        paired_test(a, a[:-1])


def test_pairwise_table_over_models_averages_seeds(tmp_path):
    data = make_synthetic(n_users=50, n_items=30, min_len=5, max_len=15, seed=0)
    for model in ("gru4rec", "pop"):
        for seed in (0, 1):
            run_experiment(model, "synthetic", "smoke", seed, FAST, out=tmp_path, data=data)
    runs = collect_runs(tmp_path)
    table = pairwise_table(runs, "synthetic", n_boot=200, n_perm=200)
    assert len(table) == 1 and table.loc[0, "model_a"] == "gru4rec" and table.loc[0, "n_users"] == 50
    gru = per_user(list(runs[runs["model"] == "gru4rec"]["run_dir"]))
    pop = per_user(list(runs[runs["model"] == "pop"]["run_dir"]))
    assert table.loc[0, "mean_diff"] == pytest.approx((gru - pop).mean())
    assert runs[runs["model"] == "gru4rec"]["ndcg@10"].mean() == pytest.approx(gru.mean(), abs=1e-6)
