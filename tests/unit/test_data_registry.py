"""Real datasets through the registry: the counts the issue names, titles, the cache."""

import numpy as np
import pytest

from ssmrec_lib.data import dataset_names, load_dataset
from ssmrec_lib.data.cache import cache_dir
from ssmrec_lib.errors import UnknownNameError


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SSMREC_CACHE_DIR", str(tmp_path / "cache"))


def _counts(d):
    return d.n_users, d.n_items, d.n_interactions


def test_names():
    names = dataset_names()
    for n in ("ml-1m", "amazon2023-video-games", "amazon2023-beauty", "amazon2014-beauty", "amazon2014-video",
              "synthetic", "csv"):
        assert n in names


def test_unknown_name_lists_known():
    with pytest.raises(UnknownNameError) as e:
        load_dataset("ml-2m")
    assert "ml-1m" in str(e.value) and "amazon2014-beauty" in str(e.value)


def test_unknown_option(shared_data):
    with pytest.raises(Exception, match="unknown option"):
        load_dataset("ml-1m", shared_data, kcor=5)


def test_ml1m_sequence_file(shared_data):
    d = load_dataset("ml-1m", shared_data)
    assert _counts(d) == (6040, 3416, 999_611)
    assert d.protocol["counts"]["as_read"]["interactions"] == 999_611  # already a 5-core fixed point
    assert d.protocol["kcore"]["passes"] == 1
    assert min(len(s) for s in d.sequences) == 18
    # ids: 1..n_items contiguous, numbered by sorted MovieID; users by UserID
    allitems = np.concatenate(d.sequences)
    assert allitems.min() == 1 and allitems.max() == d.n_items == len(np.unique(allitems))
    assert list(d.item_ids[:3]) == ["1", "2", "3"] and list(d.user_ids[:2]) == ["1", "2"]
    assert np.all(np.diff(d.item_ids.astype(int)) > 0)
    # the file's first rows: user 1 starts with movie 3186 then 1022
    assert list(d.item_ids[d.sequences[0][:2] - 1]) == ["3186", "1022"]
    # titles and genres from movies.dat (Latin-1, HTML-unescaped)
    assert d.item_titles[0] == "" and d.item_titles[1] == "Toy Story (1995)"
    assert d.item_genres[1] == "Animation|Children's|Comedy"
    assert len(d.item_titles) == d.n_items + 1
    assert all(t for t in d.item_titles[1:])


def test_ml1m_titles_unescaped(shared_data):
    from ssmrec_lib.data.ml1m import read_movies

    titles, _ = read_movies(shared_data / "ml-1m" / "movies.dat")
    assert len(titles) == 3883
    # line 3776 holds the file's one HTML entity and a Latin-1 byte: &#8230; -> U+2026, \xe9 -> U+00E9
    assert titles["3845"] == "And God Created Woman (Et Dieu\u2026Cr\u00e9a la Femme) (1956)"
    assert not any("&#" in t for t in titles.values())


@pytest.mark.parametrize("name,as_read,core5", [
    ("amazon2014-beauty", (52_204, 57_289, 394_908), (22_363, 12_101, 198_502)),
    ("amazon2014-video", (31_013, 23_715, 287_107), (24_303, 10_672, 231_780)),
])
def test_amazon2014(shared_data, name, as_read, core5):
    raw = load_dataset(name, shared_data, kcore=0)
    assert _counts(raw) == as_read
    d = load_dataset(name, shared_data)
    assert _counts(d) == core5
    c = d.protocol["counts"]["as_read"]
    assert (c["users"], c["items"], c["interactions"]) == as_read
    # fixed point: every user and item has >= 5 interactions
    assert min(len(s) for s in d.sequences) >= 5
    assert np.bincount(np.concatenate(d.sequences))[1:].min() >= 5
    # without timestamps the file order is kept: first user of the as-read file, original ids
    assert raw.user_ids[0] == "1"
    first_items = [int(x) for x in raw.item_ids[raw.sequences[0] - 1]]
    with open(shared_data / "amazon-2014-sasrec" / ("Beauty.txt" if "beauty" in name else "Video.txt")) as f:
        expect = [int(line.split()[1]) for line in f.readlines()[:len(first_items)] if line.split()[0] == "1"]
    assert first_items[:len(expect)] == expect


def test_amazon2023_history_samples(shared_data):
    vg = load_dataset("amazon2023-video-games", shared_data, kcore=0, source="history_sample")
    assert _counts(vg) == (30, 146, 150)
    be = load_dataset("amazon2023-beauty", shared_data, kcore=0, source="history_sample")
    assert _counts(be) == (30, 150, 150)
    assert all(len(s) == 5 for s in vg.sequences)
    assert all(np.all(np.diff(t) >= 0) for t in vg.timestamps)  # chronological, seconds
    assert vg.timestamps[0][0] < 2_000_000_000  # seconds, not ms
    assert all(t for t in vg.item_titles[1:])  # titles from the product field


def test_amazon2023_review_sample(shared_data):
    d = load_dataset("amazon2023-video-games", shared_data, kcore=0, source="reviews")
    c = d.protocol["counts"]["as_read"]
    assert (c["interactions"], c["users"], c["items"]) == (2851, 2802, 3)
    assert d.protocol["dedup_dropped"] == 30  # exact (user, parent_asin, timestamp) repeats in the sample
    assert d.n_interactions == 2851 - 30
    titles = dict(zip(d.item_ids, d.item_titles[1:]))
    import pandas as pd

    meta = pd.read_csv(shared_data / "amazon-2023-video-games" / "meta_top200_by_rating_number.csv")
    meta_titles = dict(zip(meta["parent_asin"], meta["title"]))
    for asin, title in titles.items():  # titles come from the meta file when it lists the item
        assert title == meta_titles.get(asin, "")


def test_amazon2023_auto_never_uses_samples(shared_data):
    with pytest.raises(Exception) as e:
        load_dataset("amazon2023-video-games", shared_data, download=False)
    assert "history_sample" in str(e.value) and "huggingface.co" in str(e.value)


def test_cache_reused_and_byte_identical(shared_data, tmp_path, monkeypatch):
    d1 = load_dataset("amazon2014-video", shared_data)
    key = d1.protocol["cache_key"]
    folder = cache_dir("amazon2014-video", key)
    first = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert set(first) == {"arrays.npz", "meta.json"}
    d2 = load_dataset("amazon2014-video", shared_data)  # from the cache
    assert _counts(d2) == _counts(d1)
    assert all(np.array_equal(a, b) for a, b in zip(d1.sequences, d2.sequences))
    # a fresh cache folder gets byte-identical files
    monkeypatch.setenv("SSMREC_CACHE_DIR", str(tmp_path / "other"))
    load_dataset("amazon2014-video", shared_data)
    again = {p.name: p.read_bytes() for p in cache_dir("amazon2014-video", key).iterdir()}
    assert again == first
    # different options -> different key
    d3 = load_dataset("amazon2014-video", shared_data, kcore=10)
    assert d3.protocol["cache_key"] != key and d3.n_interactions < d1.n_interactions


def test_synthetic_by_name():
    d = load_dataset("synthetic", n_users=50, n_items=40, seed=1)
    assert d.n_users == 50 and d.n_items == 40
