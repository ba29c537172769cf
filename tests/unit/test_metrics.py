import itertools
import math

import numpy as np
import pytest
import torch

from ssmrec_lib.metrics import MetricAccumulator, count_higher_and_ties, rank_metrics


def _m(scores, target, ks=(1, 2, 3), ties="expected"):
    out = rank_metrics(torch.tensor([scores], dtype=torch.float32), torch.tensor([target]), ks, ties)
    return {k: float(v[0]) for k, v in out.items()}


def test_no_ties_hand_computed():
    # target 0.5 is beaten by 0.9 only -> rank 2
    m = _m([0.1, 0.9, 0.5, 0.3], 2)
    assert m["hr@1"] == 0 and m["hr@2"] == 1 and m["hr@3"] == 1
    assert m["ndcg@2"] == pytest.approx(1 / math.log2(3))
    assert m["mrr@3"] == pytest.approx(0.5)
    assert m["ndcg@1"] == 0 and m["mrr@1"] == 0
    # both rules agree without ties
    assert m == pytest.approx(_m([0.1, 0.9, 0.5, 0.3], 2, ties="pessimistic"))


def test_ties_pessimistic_hand_computed():
    m = _m([1.0, 1.0, 1.0, 0.0], 0, ties="pessimistic")  # target ties with 2 others -> rank 3
    assert m["hr@2"] == 0 and m["hr@3"] == 1
    assert m["ndcg@3"] == pytest.approx(0.5)  # 1 / log2(4)
    assert m["mrr@3"] == pytest.approx(1 / 3)


def test_ties_expected_hand_computed():
    m = _m([1.0, 1.0, 1.0, 0.0], 0)  # rank uniform on {1, 2, 3}
    assert m["hr@1"] == pytest.approx(1 / 3)
    assert m["hr@2"] == pytest.approx(2 / 3)
    assert m["hr@3"] == pytest.approx(1.0)
    assert m["ndcg@2"] == pytest.approx((1 + 1 / math.log2(3)) / 3)
    assert m["mrr@3"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)


def test_expected_rule_equals_average_over_all_tie_orders():
    """Independent check: enumerate every ordering of tied items and average the plain-rank metrics."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        s = rng.integers(0, 3, size=6).astype(float)
        t = int(rng.integers(0, 6))
        tied = [j for j in range(6) if s[j] == s[t]]
        higher = int((s > s[t]).sum())
        vals = {k: [] for k in ("hr@2", "ndcg@2", "mrr@2", "hr@4", "ndcg@4", "mrr@4")}
        for perm in itertools.permutations(tied):
            r = higher + perm.index(t) + 1
            for k in (2, 4):
                vals[f"hr@{k}"].append(float(r <= k))
                vals[f"ndcg@{k}"].append(1 / math.log2(r + 1) if r <= k else 0.0)
                vals[f"mrr@{k}"].append(1 / r if r <= k else 0.0)
        got = _m(list(s), t, ks=(2, 4))
        for k, v in vals.items():
            assert got[k] == pytest.approx(np.mean(v)), (s, t, k)


def test_minus_inf_candidates_never_outrank():
    h, t = count_higher_and_ties(torch.tensor([[float("-inf"), 0.2, float("-inf"), 0.1]]), torch.tensor([3]))
    assert h.item() == 1 and t.item() == 0


def test_accumulator_means_over_batches():
    acc = MetricAccumulator()
    acc.add(rank_metrics(torch.tensor([[0.0, 1.0]]), torch.tensor([1]), ks=(1,)))  # hit
    acc.add(rank_metrics(torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]]), torch.tensor([0, 0, 1]), ks=(1,)))
    r = acc.result()
    assert acc.n == 4 and r["hr@1"] == pytest.approx(2 / 4)
