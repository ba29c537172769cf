"""The pipeline's rules on hand-made interactions: order, tie-break, dedup, iterated k-core, ids."""

import numpy as np
import pytest

from ssmrec_lib.data.pipeline import RawInteractions, build_sequences, kcore_mask
from ssmrec_lib.errors import DataError


def raw(rows, with_time=True):
    users = [r[0] for r in rows]
    items = [r[1] for r in rows]
    time = [r[2] for r in rows] if with_time else None
    return RawInteractions.from_columns(users, items, time=time, sources=[{"name": "t", "bytes": 0, "sha256": "x"}])


def seqs(d):
    """{original user: [original items]}"""
    return {u: [str(d.item_ids[i - 1]) for i in s] for u, s in zip(d.user_ids, d.sequences)}


def test_order_by_time_ties_keep_file_order():
    rows = [("u", "c", 5), ("u", "a", 3), ("u", "b", 5), ("u", "d", 1)]
    d = build_sequences(raw(rows), "t", kcore=0)
    assert seqs(d) == {"u": ["d", "a", "c", "b"]}  # c before b: same second, file order
    assert list(d.timestamps[0]) == [1, 3, 5, 5]


def test_without_time_file_order_is_time_order():
    rows = [("2", "x", 0), ("1", "z", 0), ("2", "y", 0), ("1", "w", 0)]
    d = build_sequences(raw(rows, with_time=False), "t", kcore=0)
    assert seqs(d) == {"1": ["z", "w"], "2": ["x", "y"]}
    assert d.timestamps is None


def test_dedup_rules():
    rows = [("u", "a", 1), ("u", "a", 1), ("u", "b", 2), ("u", "a", 3)]
    exact = build_sequences(raw(rows), "t", kcore=0)
    assert seqs(exact) == {"u": ["a", "b", "a"]}  # exact repeat dropped, re-consumption kept
    assert exact.protocol["dedup_dropped"] == 1
    ui = build_sequences(raw(rows), "t", kcore=0, dedup="user_item")
    assert seqs(ui) == {"u": ["a", "b"]}
    none = build_sequences(raw(rows), "t", kcore=0, dedup="none")
    assert none.n_interactions == 4
    with pytest.raises(DataError, match="dedup"):
        build_sequences(raw(rows), "t", dedup="bogus")


def test_ids_sorted_numerically_and_padding_free():
    rows = [("10", "30", 1), ("9", "4", 1), ("10", "100", 2), ("9", "30", 2)]
    d = build_sequences(raw(rows), "t", kcore=0)
    assert list(d.user_ids) == ["9", "10"]            # numeric order, not "10" < "9"
    assert list(d.item_ids) == ["4", "30", "100"]
    assert seqs(d) == {"9": ["4", "30"], "10": ["30", "100"]}
    assert all(s.min() >= 1 and s.max() <= d.n_items for s in d.sequences)
    s_rows = [("b", "y", 1), ("a", "x", 1)]
    assert list(build_sequences(raw(s_rows), "t", kcore=0).user_ids) == ["a", "b"]


def _brute_kcore(pairs, k):
    pairs = list(pairs)
    while True:
        uc, ic = {}, {}
        for u, i in pairs:
            uc[u] = uc.get(u, 0) + 1
            ic[i] = ic.get(i, 0) + 1
        kept = [(u, i) for u, i in pairs if uc[u] >= k and ic[i] >= k]
        if len(kept) == len(pairs):
            return kept
        pairs = kept


@pytest.mark.parametrize("seed,k", [(0, 2), (1, 3), (2, 5)])
def test_kcore_matches_brute_force_fixed_point(seed, k):
    rng = np.random.default_rng(seed)
    u = rng.integers(0, 60, 800)
    i = (rng.zipf(1.5, 800) % 80).astype(np.int64)
    keep, _ = kcore_mask(u, i, k, k)
    assert sorted(zip(u[keep].tolist(), i[keep].tolist())) == sorted(_brute_kcore(zip(u.tolist(), i.tolist()), k))
    if keep.any():
        assert np.bincount(u[keep])[np.unique(u[keep])].min() >= k
        assert np.bincount(i[keep])[np.unique(i[keep])].min() >= k


def test_kcore_separate_sides_and_protocol():
    # user a: 3 items; user b: 1 item. items: x by both
    rows = [("a", "x", 1), ("a", "y", 2), ("a", "z", 3), ("b", "x", 1)]
    d = build_sequences(raw(rows), "t", kcore=0, user_k=2)
    assert list(d.user_ids) == ["a"] and d.n_items == 3
    assert d.protocol["kcore"] == {"user_k": 2, "item_k": 0, "passes": 2, "iterated": True}
    c = d.protocol["counts"]
    assert c["as_read"]["interactions"] == 4 and c["after_filter"]["interactions"] == 3


def test_empty_after_filter():
    rows = [("a", "x", 1), ("b", "y", 2)]
    with pytest.raises(DataError, match="empty after filtering.*kcore"):
        build_sequences(raw(rows), "t", kcore=5)


def test_deterministic():
    rng = np.random.default_rng(0)
    rows = [(str(a), str(b), int(c)) for a, b, c in zip(rng.integers(0, 30, 500), rng.integers(0, 40, 500),
                                                          rng.integers(0, 50, 500))]
    a = build_sequences(raw(rows), "t", kcore=3)
    b = build_sequences(raw(rows), "t", kcore=3)
    assert a.protocol == b.protocol
    assert all(np.array_equal(x, y) for x, y in zip(a.sequences, b.sequences))
    # shuffling rows changes nothing but the order of equal-timestamp ties: ids are independent of file order
    perm = rng.permutation(len(rows))
    c = build_sequences(raw([rows[j] for j in perm]), "t", kcore=3)
    assert list(c.item_ids) == list(a.item_ids) and list(c.user_ids) == list(a.user_ids)
    assert [sorted(s.tolist()) for s in c.sequences] == [sorted(s.tolist()) for s in a.sequences]


@pytest.mark.parametrize("seed", [0, 1])
def test_dedup_matches_pandas_duplicated(seed):
    """The fast repeat finder == pandas' duplicated (keep first), on data full of timestamp ties."""
    import pandas as pd

    from ssmrec_lib.data.pipeline import _repeats, _stable_sort_by_user_time

    rng = np.random.default_rng(seed)
    n = 3000
    u, i, t = rng.integers(0, 20, n), rng.integers(0, 15, n), rng.integers(0, 30, n)
    perm = _stable_sort_by_user_time(u, t)
    u, i, t = u[perm], i[perm], t[perm]
    assert np.array_equal(_repeats(u, i, t), pd.DataFrame({"u": u, "i": i, "t": t}).duplicated().to_numpy())
    assert np.array_equal(_repeats(u, i), pd.DataFrame({"u": u, "i": i}).duplicated().to_numpy())
    # the sort is stable: equal (u, t) keep input order
    assert np.all(np.diff(perm)[(np.diff(u) == 0) & (np.diff(t) == 0)] > 0)
