"""The one pipeline every dataset goes through: raw interactions -> `SequenceData`.

Steps (in this order; each is recorded in `SequenceData.protocol`):
1. Order.  Rows are sorted by (user, timestamp) with a *stable* sort, so rows with equal timestamps keep the
   order in which the parser delivered them (the file order, unless the parser says otherwise: the ML-1M
   ratings.dat parser pre-sorts ties by movie id, as LRURec does). Without timestamps (SASRec's files, which
   are already in time order), the file order is the time order.
2. Deduplicate.  `dedup="exact"` (default) drops a row that repeats an earlier row's (user, item, timestamp)
   exactly; repeated consumption of an item at another time is kept. Without timestamps nothing can be told
   apart, so nothing is dropped. `dedup="user_item"` keeps only each user's first interaction with an item;
   `dedup="none"` keeps every row.
3. k-core.  Users with fewer than `user_k` interactions and items with fewer than `item_k` are removed,
   repeatedly, until neither count changes (a fixed point). Counts are interactions (rows), not distinct
   items. k = 0 disables a side.
4. Re-index.  Items get contiguous ids 1..n_items, 0 is padding; both users and items are numbered in the order
   of their *sorted original ids* (numerically when every id is an integer, else as strings). This is
   independent of file order and keeps SASRec/ML-1M numbering order. Users are listed in the same order.
5. Sequences.  One chronological item array per user (timestamps in seconds alongside, when known).

Glossary: u = user code, i = item code (dense ints into the parser's vocabularies), t = timestamp.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError
from .types import SequenceData

PIPELINE_VERSION = 1  # bump when a rule changes: it is part of the cache key
DEDUP_RULES = ("exact", "user_item", "none")


@dataclass
class RawInteractions:
    """What a parser returns: one row per interaction, ids as dense codes into vocabularies.

    user, item: (n,) int64 codes; user_vocab[user[r]] is row r's original user id (same for items).
    time: (n,) int64 timestamps in `time_unit`, or None when the row order is the time order.
    item_titles / item_genres: original item id (str) -> text, when the source has them.
    sources: [{"path", "name", "bytes", "sha256"}] of the files read.
    order_note: how rows with equal timestamps are ordered (the tie-break), in words.
    """

    user: np.ndarray
    item: np.ndarray
    user_vocab: np.ndarray
    item_vocab: np.ndarray
    time: np.ndarray | None = None
    time_unit: str = "s"
    item_titles: dict[str, str] | None = None
    item_genres: dict[str, str] | None = None
    sources: list[dict] = field(default_factory=list)
    order_note: str = "file order"
    notes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_columns(cls, users, items, time=None, **kw) -> "RawInteractions":
        """Factorise original-id columns (array-likes of str/int, or pandas Categoricals) into codes."""
        u_codes, u_vocab = _factorize(users)
        i_codes, i_vocab = _factorize(items)
        t = None if time is None else np.asarray(time, dtype=np.int64)
        return cls(user=u_codes, item=i_codes, user_vocab=u_vocab, item_vocab=i_vocab, time=t, **kw)

    def __len__(self) -> int:
        return len(self.user)


def _factorize(col) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(col, pd.Categorical) or isinstance(getattr(col, "dtype", None), pd.CategoricalDtype):
        cat = pd.Categorical(col)
        return cat.codes.astype(np.int64), np.asarray(cat.categories)
    codes, uniques = pd.factorize(np.asarray(col), sort=False)
    return codes.astype(np.int64), np.asarray(uniques)


def count_summary(user: np.ndarray, item: np.ndarray) -> dict[str, Any]:
    """users, items, interactions, mean / median sequence length, density of (user, item) code arrays."""
    n = int(len(user))
    if n == 0:
        return {"users": 0, "items": 0, "interactions": 0, "mean_len": 0.0, "median_len": 0.0, "density": 0.0}
    lens = np.bincount(user)
    lens = lens[lens > 0]
    n_items = int(np.count_nonzero(np.bincount(item)))
    return {
        "users": int(len(lens)),
        "items": n_items,
        "interactions": n,
        "mean_len": float(lens.mean()),
        "median_len": float(np.median(lens)),
        "density": n / (len(lens) * n_items),
    }


def kcore_mask(user: np.ndarray, item: np.ndarray, user_k: int, item_k: int) -> tuple[np.ndarray, int]:
    """Boolean mask of the rows in the iterated (user_k, item_k)-core, and the number of passes it took."""
    keep = np.ones(len(user), dtype=bool)
    n_u, n_i = int(user.max(initial=-1)) + 1, int(item.max(initial=-1)) + 1
    passes = 0
    while True:
        passes += 1
        ok = keep.copy()
        if user_k > 0:
            ok &= np.bincount(user[keep], minlength=n_u)[user] >= user_k
        if item_k > 0:
            ok &= np.bincount(item[keep], minlength=n_i)[item] >= item_k
        if np.array_equal(ok, keep):
            return keep, passes
        keep = ok


def _id_order(vocab: np.ndarray) -> np.ndarray:
    """argsort of original ids: numeric when every id is an integer, else lexicographic (deterministic)."""
    as_str = vocab.astype(str)
    if len(as_str) and np.all(np.char.isdigit(as_str)):
        return np.argsort(as_str.astype(np.int64), kind="stable")
    return np.argsort(as_str, kind="stable")


def _combined_key(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """One int64 key ordering like (a, b) lexicographically (a >= 0), or None when it would overflow int64."""
    if len(a) == 0:
        return np.zeros(0, np.int64)
    b_min, b_span = int(b.min()), int(b.max()) - int(b.min()) + 1
    if (int(a.max()) + 1) * b_span >= 2**63 or int(a.min()) < 0:
        return None
    return a.astype(np.int64) * b_span + (b - b_min)


def _stable_sort_by_user_time(user: np.ndarray, time: np.ndarray | None) -> np.ndarray:
    """Row permutation sorting by (user, time); equal keys keep their input order (stable sorts)."""
    if time is None:
        return np.argsort(user, kind="stable")
    key = _combined_key(user, time)
    if key is not None:
        return np.argsort(key, kind="stable")
    by_t = np.argsort(time, kind="stable")
    return by_t[np.argsort(user[by_t], kind="stable")]


def _repeats(u: np.ndarray, i: np.ndarray, t: np.ndarray | None = None) -> np.ndarray:
    """(n,) bool: True where the row's (u, i[, t]) already occurred in an earlier row.

    With t: rows are already sorted by (u, t), so an exact repeat can only sit inside a run of equal (u, t);
    only the (few) rows in such runs are examined, as (run, item) pairs. Without t: a stable sort by (u, i)
    puts each first occurrence first.
    """
    n = len(u)
    dup = np.zeros(n, dtype=bool)
    if n < 2:
        return dup
    if t is not None:
        same_ut = (u[1:] == u[:-1]) & (t[1:] == t[:-1])
        in_run = np.concatenate([[False], same_ut]) | np.concatenate([same_ut, [False]])
        cand = np.flatnonzero(in_run)
        if len(cand):
            run_id = np.cumsum(np.concatenate([[True], ~same_ut])) - 1
            dup[cand[_repeats(run_id[cand], i[cand])]] = True
        return dup
    key = _combined_key(u, i)
    if key is not None:
        order = np.argsort(key, kind="stable")
        same = key[order][1:] == key[order][:-1]
    else:
        order = np.lexsort((np.arange(n), i, u))
        same = (u[order][1:] == u[order][:-1]) & (i[order][1:] == i[order][:-1])
    dup[order[1:][same]] = True
    return dup


def split_flat(flat: np.ndarray, bounds: np.ndarray) -> list[np.ndarray]:
    """np.split(flat, bounds) as views, without np.split's per-piece overhead."""
    edges = np.concatenate([[0], bounds, [len(flat)]]).tolist()
    return [flat[a:b] for a, b in zip(edges[:-1], edges[1:])]


def build_sequences(raw: RawInteractions, name: str, *, kcore: int = 5, user_k: int | None = None,
                    item_k: int | None = None, dedup: str = "exact") -> SequenceData:
    """Run steps 1-5 on `raw`; see the module docstring. Raises DataError when nothing survives."""
    if dedup not in DEDUP_RULES:
        raise DataError(f"dedup must be one of {DEDUP_RULES}, got {dedup!r}")
    user_k = kcore if user_k is None else user_k
    item_k = kcore if item_k is None else item_k
    if min(user_k, item_k) < 0:
        raise DataError(f"k-core thresholds must be >= 0, got user_k={user_k}, item_k={item_k}")
    u, i, t = raw.user, raw.item, raw.time
    as_read = count_summary(u, i)
    if as_read["interactions"] == 0:
        raise DataError(f"dataset {name!r}: the source holds no interactions ({_names(raw)})")

    # 1. order: stable (user, time), ties keep the parser's order
    perm = _stable_sort_by_user_time(u, t)
    u, i = u[perm], i[perm]
    t = None if t is None else t[perm]

    # 2. dedup
    dropped_dup = 0
    if dedup == "exact" and t is not None:
        dup = _repeats(u, i, t)
    elif dedup == "user_item":
        dup = _repeats(u, i)
    else:
        dup = None
    if dup is not None and dup.any():
        dropped_dup = int(dup.sum())
        keep = ~dup
        u, i = u[keep], i[keep]
        t = None if t is None else t[keep]

    # 3. iterated k-core
    keep, passes = kcore_mask(u, i, user_k, item_k)
    u, i = u[keep], i[keep]
    t = None if t is None else t[keep]
    after = count_summary(u, i)
    if after["interactions"] == 0:
        raise DataError(
            f"dataset {name!r} is empty after filtering: {as_read['interactions']:,} interactions as read "
            f"({as_read['users']:,} users, {as_read['items']:,} items), none left after the iterated "
            f"{user_k}-core (users) / {item_k}-core (items) filter. Lower kcore (kcore=0 disables it)."
        )

    # 4. re-index by sorted original id; 0 stays padding
    u_present = np.flatnonzero(np.bincount(u, minlength=len(raw.user_vocab)))
    i_present = np.flatnonzero(np.bincount(i, minlength=len(raw.item_vocab)))
    u_sorted = u_present[_id_order(raw.user_vocab[u_present])]
    i_sorted = i_present[_id_order(raw.item_vocab[i_present])]
    user_rank = np.empty(len(raw.user_vocab), dtype=np.int64)
    user_rank[u_sorted] = np.arange(len(u_sorted))
    item_new = np.zeros(len(raw.item_vocab), dtype=np.int64)
    item_new[i_sorted] = np.arange(1, len(i_sorted) + 1)

    # 5. sequences: users in id order; the stable sort keeps each user's chronological order
    ur = user_rank[u]
    perm = np.argsort(ur, kind="stable")
    items_flat = item_new[i[perm]]
    bounds = np.cumsum(np.bincount(ur, minlength=len(u_sorted)))[:-1]
    sequences = split_flat(items_flat, bounds)
    timestamps = None
    if t is not None:
        t_sec = t[perm] // 1000 if raw.time_unit == "ms" else t[perm]
        timestamps = split_flat(t_sec.astype(np.int64), bounds)

    item_ids = raw.item_vocab[i_sorted].astype(str)
    titles = genres = None
    if raw.item_titles is not None:
        titles = [""] + [raw.item_titles.get(x, "") for x in item_ids]
    if raw.item_genres is not None:
        genres = [""] + [raw.item_genres.get(x, "") for x in item_ids]

    protocol = {
        "dataset": name,
        "pipeline_version": PIPELINE_VERSION,
        "sources": [{k: r[k] for k in ("name", "bytes", "sha256") if k in r} for r in raw.sources],
        "order": "stable sort by (user, timestamp); ties: " + raw.order_note
        + ("" if raw.time is not None else " (no timestamps: file order is the time order)"),
        "dedup": dedup,
        "dedup_dropped": dropped_dup,
        "kcore": {"user_k": user_k, "item_k": item_k, "passes": passes, "iterated": True},
        "filter": _filter_name(user_k, item_k),
        "ids": "contiguous 1..n_items (0 = padding), numbered by sorted original id; users likewise",
        "counts": {"as_read": as_read, "after_filter": after},
        "has_timestamps": raw.time is not None,
        **raw.notes,
    }
    return SequenceData(
        name=name,
        sequences=sequences,
        n_items=len(i_sorted),
        user_ids=raw.user_vocab[u_sorted].astype(str),
        item_ids=item_ids,
        item_titles=titles,
        item_genres=genres,
        timestamps=timestamps,
        protocol=protocol,
    )


def _filter_name(user_k: int, item_k: int) -> str:
    if user_k == 0 and item_k == 0:
        return "none"
    if user_k == item_k:
        return f"iterated {user_k}-core"
    return f"iterated k-core (users >= {user_k}, items >= {item_k})"


def _names(raw: RawInteractions) -> str:
    return ", ".join(s.get("name", "?") for s in raw.sources) or "no files"
