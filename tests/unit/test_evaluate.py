import numpy as np
import pytest
import torch
from torch import nn

from ssmrec_lib.data import make_synthetic
from ssmrec_lib.evaluate import NonFiniteScoreError, evaluate, sample_negatives
from ssmrec_lib.models.registry import build_model


class FixedScores(nn.Module):
    """A stand-in model: every user gets the scores in row 1 of `table`."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("table", table)  # (n_keys, n_items + 1)

    def readout(self, seq, lengths):
        return torch.ones(seq.shape[0], dtype=torch.long)

    def score(self, key):
        s = self.table[key].clone()
        s[:, 0] = float("-inf")
        return s


class LastItemKeyed(nn.Module):
    """A stand-in model that returns row `last history item` of `table` as is, padding column included."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("table", table)  # (n_items + 1, n_items + 1)

    def readout(self, seq, lengths):
        return seq[:, -1]

    def score(self, key):
        return self.table[key]


def test_full_ranking_masks_the_padding_column_itself():
    # the model scores padding (item 0) highest; evaluate must not rank it: target 2 is then first of items 1..3
    row = torch.tensor([9.0, 1.0, 3.0, 2.0])
    model = LastItemKeyed(row.expand(4, 4))
    out = evaluate(model, [np.array([1])], np.array([2]), max_len=3, ks=(1,))
    assert out["hr@1"] == 1 and out["mrr@1"] == 1
    # a model returning a read-only expanded view (as Pop does) is not written into
    model = FixedScores(torch.zeros(2, 4))
    model.score = lambda key: row.expand(len(key), 4)
    assert evaluate(model, [np.array([1])], np.array([2]), max_len=3, ks=(1,))["hr@1"] == 1
    assert row[0] == 9.0


def test_nan_scores_raise_naming_model_and_batch():
    # users sort by history length: user 0 (1 item) is batch 0, user 1 (2 items) is batch 1 at batch_size=1
    table = torch.arange(25, dtype=torch.float32).view(5, 5)
    table[3, 4] = float("nan")  # user 1's history ends with item 3: its score for item 4 is NaN
    model = LastItemKeyed(table)
    hist, tgt = [np.array([1]), np.array([2, 3])], np.array([2, 1])
    with pytest.raises(NonFiniteScoreError, match=r"'LastItemKeyed'.*batch 1 .*user indices \[1\]"):
        evaluate(model, hist, tgt, max_len=3, batch_size=1)
    model.name = "sasrec"  # registered models are named by their registry name
    with pytest.raises(NonFiniteScoreError, match=r"'sasrec'.*batch 0 for 1 of 2 users"):
        evaluate(model, hist, tgt, max_len=3, batch_size=2)
    # a NaN target is an error too (it would otherwise count as rank 1)
    with pytest.raises(NonFiniteScoreError):
        evaluate(model, hist, np.array([2, 4]), max_len=3, mode="sampled", negatives=np.array([[3], [2]]))
    # NaNs outside what is ranked do not matter: a masked history item, a non-candidate item in sampled mode
    out = evaluate(model, [np.array([1]), np.array([2, 4, 3])], tgt, max_len=3, mask_history=True, ks=(1,))
    assert out["hr@1"] == pytest.approx(0.5)  # user 1: items 2, 3, 4 masked, target 1 first; user 0: rank 3
    out = evaluate(model, hist, tgt, max_len=3, ks=(1,), mode="sampled", negatives=np.array([[3], [2]]))
    assert out["n_users"] == 2


def test_full_ranking_and_history_masking_hand_computed():
    # items 1..4; user 0 (key 1): scores 4 > 3 > 2 > 1 for items 4,3,2,1; target 2 -> rank 3
    table = torch.tensor([[0, 0, 0, 0, 0], [0, 1.0, 2.0, 3.0, 4.0]])
    model = FixedScores(table)
    hist = [np.array([1, 4])]
    out = evaluate(model, hist, np.array([2]), max_len=5, ks=(1, 2, 3))
    assert out["hr@2"] == 0 and out["hr@3"] == 1 and out["mrr@3"] == pytest.approx(1 / 3)
    # masking history (items 1 and 4) removes item 4 from above the target -> rank 2
    out = evaluate(model, hist, np.array([2]), max_len=5, ks=(1, 2, 3), mask_history=True)
    assert out["hr@1"] == 0 and out["hr@2"] == 1 and out["mrr@3"] == pytest.approx(1 / 2)
    # a target that also appears in the history is not masked away
    out = evaluate(model, [np.array([4, 1])], np.array([1]), max_len=5, ks=(3, 4), mask_history=True)
    assert out["hr@3"] == 1  # items 2, 3 above it; 4 masked


def test_sampled_mode_ranks_against_given_negatives():
    table = torch.tensor([[0, 0, 0, 0, 0, 0], [0, 5.0, 1.0, 3.0, 4.0, 2.0]])
    model = FixedScores(table)
    # target 3 (score 3) against negatives {2 (1.0), 5 (2.0)} -> rank 1; against {4, 2} -> rank 2
    out = evaluate(model, [np.array([1])], np.array([3]), max_len=3, ks=(1,), mode="sampled", negatives=np.array([[2, 5]]))
    assert out["hr@1"] == 1
    out = evaluate(model, [np.array([1])], np.array([3]), max_len=3, ks=(1,), mode="sampled", negatives=np.array([[4, 2]]))
    assert out["hr@1"] == 0


@pytest.mark.parametrize("sampling", ["uniform", "popularity"])
def test_sample_negatives_excludes_seen_and_is_seeded(sampling):
    rng = np.random.default_rng(1)
    hist = [rng.choice(np.arange(1, 201), size=30, replace=False) for _ in range(20)]
    tgt = np.array([int(h[0]) for h in hist])  # target inside history: still excluded
    counts = np.arange(201, dtype=float)
    a = sample_negatives(hist, tgt, 200, 100, sampling, counts, seed=3)
    b = sample_negatives(hist, tgt, 200, 100, sampling, counts, seed=3)
    assert a.shape == (20, 100) and np.array_equal(a, b)
    for u in range(20):
        assert len(set(a[u])) == 100
        assert not set(a[u]) & set(hist[u]) and tgt[u] not in a[u]
        assert a[u].min() >= 1 and a[u].max() <= 200


def test_batch_size_does_not_change_results():
    data = make_synthetic(n_users=40, n_items=60, seed=0)
    split = data.split()
    torch.manual_seed(0)
    model = build_model("sasrec", 60, 20, {"d_model": 16, "n_layers": 1})
    a = evaluate(model, split.valid_history, split.valid_target, max_len=20, batch_size=7)
    b = evaluate(model, split.valid_history, split.valid_target, max_len=20, batch_size=64)
    assert a == pytest.approx(b)
    assert a["n_users"] == 40


def test_pop_through_the_same_path():
    pop = build_model("pop", 5, 10).fit([np.array([3, 3, 3, 2, 2, 1])])
    # popularity 3 > 2 > 1 > 4 = 5 (ties at 0)
    out = evaluate(pop, [np.array([1]), np.array([2])], np.array([3, 4]), max_len=10, ks=(1, 5))
    # user 0: rank 1; user 1: target 4 ties with 5 after 3 others -> rank 4 or 5 -> hr@1 = 0, hr@5 = 1
    assert out["hr@1"] == pytest.approx(0.5) and out["hr@5"] == pytest.approx(1.0)
