"""next_item windows: "last" keeps one window per user; "all" trains on every target exactly once per epoch."""

from collections import Counter

import numpy as np
import pytest

from ssmrec_lib.config import ConfigError
from ssmrec_lib.objectives import make_objective


def _targets(obj, ids):
    """The targets the loss uses: the last `lengths` positions of each row (left padding)."""
    b = obj.batch(ids)
    return [row[len(row) - n:].tolist() if n else [] for row, n in zip(b.targets.numpy(), b.lengths.numpy())]


def test_all_windows_cover_every_target_once_and_last_keeps_the_newest():
    rng = np.random.default_rng(0)
    # items are unique per (user, position) so a target identifies where it came from
    train = [np.arange(1, n + 1) + 1000 * u for u, n in enumerate([1, 2, 5, 6, 7, 13, 21])]
    max_len = 5
    every = Counter(int(x) for s in train if len(s) >= 2 for x in s[1:])
    obj = make_objective("next_item", train, max_len, windows="all")
    ids = obj.epoch_samples(rng)
    got = Counter(t for row in _targets(obj, ids) for t in row)
    assert got == every  # each target of each history, exactly once
    b = obj.batch(ids)
    # inputs are the items just before each target (teacher forcing inside a window)
    for inp, tgt, n in zip(b.item_seq.numpy(), b.targets.numpy(), b.lengths.numpy()):
        assert n >= 1 and (tgt[len(tgt) - n:] == inp[len(inp) - n:] + 1).all()
    last = make_objective("next_item", train, max_len)
    got_last = Counter(t for row in _targets(last, last.epoch_samples(rng)) for t in row)
    want_last = Counter(int(x) for s in train if len(s) >= 2 for x in s[1:][-max_len:])
    assert got_last == want_last and sum(got_last.values()) < sum(every.values())
    assert (obj.lengths(ids) <= max_len).all() and (obj.lengths(ids) >= 1).all()


def test_windows_apply_to_next_item_and_cloze_not_to_prefixes():
    with pytest.raises(ConfigError, match="next_item and cloze"):
        make_objective("last_item", [np.arange(1, 5)], 4, windows="all")
    for name in ("next_item", "cloze"):
        with pytest.raises(ConfigError, match="'last' or 'all'"):
            make_objective(name, [np.arange(1, 5)], 4, windows="some")


def test_cloze_windows_let_every_item_of_a_long_history_be_masked_once_per_epoch():
    train = [np.arange(1, n + 1) + 1000 * u for u, n in enumerate([1, 2, 5, 6, 11, 13])]
    max_len = 5
    obj = make_objective("cloze", train, max_len, windows="all")
    ids = obj.epoch_samples(np.random.default_rng(0))
    b = obj.batch(ids)
    rows = [row[len(row) - n:].tolist() for row, n in zip(b.targets.numpy(), b.lengths.numpy())]
    got = Counter(x for r in rows for x in r)
    # disjoint windows of <= max_len consecutive items, each with >= 2 items; only a lone first item is left out
    # (a history of k * max_len + 1 items: 6 -> item 3001, 11 -> item 4001)
    want = Counter(int(x) for s in train if len(s) >= 2 for x in s) - Counter([3001, 4001])
    assert got == want and all(2 <= len(r) <= max_len for r in rows)
    assert all((np.diff(r) == 1).all() for r in rows)  # consecutive: each window keeps its time order
    assert (obj.lengths(ids) == b.lengths.numpy()).all()
    last = make_objective("cloze", train, max_len)  # default: the newest max_len items of each user
    bl = last.batch(last.epoch_samples(np.random.default_rng(0)))
    assert sorted(r[-1] for r in bl.targets.numpy().tolist()) == sorted(int(s[-1]) for s in train if len(s) >= 2)
