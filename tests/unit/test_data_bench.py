"""Dataset preparation cold vs from the cache: correctness here, the timings in `python -m ssmrec_lib bench data`
(ssmrec_lib/bench/data.py; wall-clock is a printed figure, never an assertion)."""

import numpy as np
import pandas as pd
import pytest

from ssmrec_lib.cli import main as cli_main
from ssmrec_lib.data import load_dataset, registry
from ssmrec_lib.bench.data import measure, write_beauty_sized_csv


def test_ml1m_cached_load_equals_cold_load_and_skips_the_pipeline(shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("SSMREC_CACHE_DIR", str(tmp_path))
    cold = load_dataset("ml-1m", shared_data)

    def boom(*a, **k):
        raise AssertionError("the second load ran the pipeline instead of reading the cache")

    monkeypatch.setattr(registry, "build_sequences", boom)
    cached = load_dataset("ml-1m", shared_data)
    assert cold.n_interactions == cached.n_interactions == 999_611
    assert (cold.n_users, cold.n_items) == (cached.n_users, cached.n_items) == (6_040, 3_416)
    assert all(np.array_equal(a, b) for a, b in zip(cold.sequences, cached.sequences))


def test_measure_counts_a_small_csv_cold_and_cached(tmp_path):
    rng = np.random.default_rng(0)
    users, items = np.repeat(np.arange(30), 6), rng.integers(0, 12, 180)
    lines = ["user_id,item_id,timestamp"] + [f"u{u},i{i},{t}" for t, (u, i) in enumerate(zip(users, items))]
    (tmp_path / "tiny.csv").write_text("\n".join(lines) + "\n")
    expected = load_dataset("csv", path=str(tmp_path / "tiny.csv"), cache=False)
    r = measure("csv", options={"path": str(tmp_path / "tiny.csv")})
    assert r["cold_counts"] == r["cached_counts"] == [expected.n_users, expected.n_items, expected.n_interactions]
    assert r["cold_s"] > 0 and r["cached_s"] > 0 and r["peak_rss_gb"] > 0


def test_bench_data_cli_prints_and_writes_the_figures(shared_data, tmp_path, capsys):
    out = tmp_path / "data.csv"
    assert cli_main(["bench", "data", "--datasets", "ml-1m", "--data-dir", str(shared_data), "--out", str(out)]) == 0
    assert "ml-1m: 999,611 interactions; cold " in capsys.readouterr().out
    row = pd.read_csv(out).iloc[0]
    assert (row["users"], row["items"], row["interactions"], bool(row["cache_matches"])) == (6040, 3416, 999_611, True)
    assert out.with_suffix(".json").is_file()  # where it was measured


@pytest.mark.slow
def test_amazon2023_beauty_sized_file_prepares_within_4_gb(tmp_path):
    """The 6.6M-row file goes through the pipeline; peak memory is a property of the code, not of the machine's
    speed, so it stays a test (the seconds are printed by `bench data --beauty-sized`)."""
    folder = tmp_path / "amazon-2023-beauty-and-personal-care"
    folder.mkdir()
    write_beauty_sized_csv(folder / "Beauty_and_Personal_Care.csv")
    r = measure("amazon2023-beauty", tmp_path, {"kcore": 5, "meta": False})
    print(r)  # the figures, for the log
    users, items, inter = r["cold_counts"]
    assert r["cached_counts"] == r["cold_counts"]
    assert users > 720_000 and inter > 6_000_000  # every generated user has >= 5 rows (dedup + k-core drop a few)
    assert r["peak_rss_gb"] < 4, r
