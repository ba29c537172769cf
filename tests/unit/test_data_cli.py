"""`python -m ssmrec_lib data stats|prepare|list`, the stats function, and an incomplete cache folder."""

import numpy as np
import pytest

from ssmrec_lib.cli import main
from ssmrec_lib.data import dataset_stats, load_dataset, stats
from ssmrec_lib.data.cache import cache_dir


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SSMREC_CACHE_DIR", str(tmp_path / "cache"))


def test_stats_function_matches_hand_computation():
    d = load_dataset("synthetic", n_users=40, n_items=30, seed=3)
    s = stats(d)
    lens = np.array([len(x) for x in d.sequences])
    n_items = len(np.unique(np.concatenate(d.sequences)))
    assert s["interactions"] == lens.sum() and s["users"] == 40 and s["items"] == n_items
    assert s["mean_len"] == pytest.approx(lens.mean()) and s["median_len"] == np.median(lens)
    assert s["density"] == pytest.approx(lens.sum() / (40 * n_items))


def test_dataset_stats_two_rows(shared_data):
    df = dataset_stats("amazon2014-beauty", shared_data)
    assert list(df["stage"]) == ["as read", "after filter"]
    assert list(df["filter"]) == ["none", "iterated 5-core"]
    assert list(df["interactions"]) == [394_908, 198_502]
    assert list(df["users"]) == [52_204, 22_363] and list(df["items"]) == [57_289, 12_101]
    assert df["density"].iloc[1] == pytest.approx(198_502 / (22_363 * 12_101))


def test_cli_stats_and_prepare(shared_data, capsys):
    assert main(["data", "stats", "--dataset", "amazon2014-video", "--data-dir", str(shared_data)]) == 0
    out = capsys.readouterr().out
    assert "287,107" in out and "231,780" in out and "iterated 5-core" in out and "as read" in out
    assert main(["data", "prepare", "--dataset", "amazon2014-video", "--data-dir", str(shared_data),
                 "--kcore", "0"]) == 0
    assert "31,013 users" in capsys.readouterr().out
    assert main(["data", "list"]) == 0
    assert "amazon2023-beauty" in capsys.readouterr().out


def test_cli_user_errors_exit_2(tmp_path, capsys, monkeypatch):
    # `make test` exports SSMREC_DATA_DIR (the lookup's second place); this test needs the files absent everywhere
    monkeypatch.delenv("SSMREC_DATA_DIR", raising=False)
    monkeypatch.setenv("SSMREC_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["data", "stats", "--dataset", "nope"]) == 2
    assert "known datasets" in capsys.readouterr().err
    assert main(["data", "stats", "--dataset", "ml-1m", "--data-dir", str(tmp_path), "--no-download"]) == 2
    assert "files.grouplens.org" in capsys.readouterr().err


def test_incomplete_cache_folder_is_rebuilt(shared_data):
    d = load_dataset("amazon2014-video", shared_data)
    folder = cache_dir("amazon2014-video", d.protocol["cache_key"])
    (folder / "meta.json").unlink()  # as if the writer died between the two files
    (folder / "arrays.npz").write_bytes(b"truncated")
    d2 = load_dataset("amazon2014-video", shared_data)
    assert d2.n_interactions == d.n_interactions and (folder / "meta.json").is_file()
    assert load_dataset("amazon2014-video", shared_data).n_interactions == d.n_interactions  # now from cache


def test_damaged_cache_files_are_ignored(shared_data):
    d = load_dataset("amazon2014-video", shared_data)
    folder = cache_dir("amazon2014-video", d.protocol["cache_key"])
    (folder / "arrays.npz").write_bytes(b"not a zip")  # meta.json still there
    assert load_dataset("amazon2014-video", shared_data).n_interactions == d.n_interactions
