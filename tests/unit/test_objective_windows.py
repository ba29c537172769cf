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


def test_windows_apply_to_next_item_only():
    with pytest.raises(ConfigError, match="next_item only"):
        make_objective("cloze", [np.arange(1, 5)], 4, windows="all")
    with pytest.raises(ConfigError, match="'last' or 'all'"):
        make_objective("next_item", [np.arange(1, 5)], 4, windows="some")
