"""Parsers on small hand-written files (tmp_path): ml-1m ratings.dat, generic CSV/TSV, Amazon '23 formats."""

import gzip
import json

import numpy as np
import pytest

from ssmrec_lib.data import load_dataset, load_interactions_csv


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SSMREC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("SSMREC_DATA_DIR", raising=False)


def seqs(d):
    return {u: [str(d.item_ids[i - 1]) for i in s] for u, s in zip(d.user_ids, d.sequences)}


def write_ml1m(folder, rows, movies=None):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.dat").write_text("".join(f"{u}::{m}::{r}::{t}\n" for u, m, r, t in rows))
    if movies is not None:
        (folder / "movies.dat").write_bytes(movies.encode("latin-1"))


def test_ml1m_ratings_tie_break_by_movie_id(tmp_path):
    rows = [(1, 20, 5, 100), (1, 10, 3, 100), (1, 5, 4, 50), (2, 20, 1, 7), (2, 5, 2, 7)]
    write_ml1m(tmp_path / "ml-1m", rows, movies="5::Five (1990)::Drama\n10::Caf\xe9 &amp; Co (1991)::Comedy|Drama\n"
                                              "20::Twenty (1992)::Horror\n")
    d = load_dataset("ml-1m", tmp_path, kcore=0)
    assert seqs(d) == {"1": ["5", "10", "20"], "2": ["5", "20"]}  # (timestamp, MovieID) ascending
    assert [list(t) for t in d.timestamps] == [[50, 100, 100], [7, 7]]
    assert d.item_titles == ["", "Five (1990)", "Caf\u00e9 & Co (1991)", "Twenty (1992)"]
    assert d.item_genres[2] == "Comedy|Drama"
    assert d.protocol["sources"][0]["name"] == "ratings.dat"
    # the folder itself works as data_dir too
    assert seqs(load_dataset("ml-1m", tmp_path / "ml-1m", kcore=0)) == seqs(d)


def test_ml1m_prefers_ratings_but_source_selects(tmp_path, shared_data):
    write_ml1m(tmp_path / "ml-1m", [(1, 2, 3, 4), (1, 3, 3, 5)])
    seq = (shared_data / "ml-1m" / "ml-1m_5core_sequences_time_ordered.tsv.gz").read_bytes()
    (tmp_path / "ml-1m" / "ml-1m_5core_sequences_time_ordered.tsv.gz").write_bytes(seq)
    assert load_dataset("ml-1m", tmp_path, kcore=0).n_interactions == 2
    assert load_dataset("ml-1m", tmp_path, source="sequences").n_interactions == 999_611


def test_generic_tsv_and_csv(tmp_path):
    p = tmp_path / "events.tsv"
    p.write_text("who\twhat\twhen\nA\tx\t3000\nA\ty\t1000\nB\tx\t2000\nB\tz\t2000\n")
    d = load_dataset("csv", path=p, user_col="who", item_col="what", time_col="when", kcore=0, time_unit="ms")
    assert seqs(d) == {"A": ["y", "x"], "B": ["x", "z"]}
    assert [list(t) for t in d.timestamps] == [[1, 3], [2, 2]]
    raw = load_interactions_csv(p, user_col="who", item_col="what", time_col="when")
    assert len(raw) == 4 and set(raw.user_vocab) == {"A", "B"}
    # gzipped comma-separated, no time column: file order
    g = tmp_path / "e.csv.gz"
    g.write_bytes(gzip.compress(b"user_id,item_id\n1,b\n1,a\n"))
    d2 = load_dataset("csv", path=g, time_col=None, kcore=0)
    assert seqs(d2) == {"1": ["b", "a"]}


def test_amazon2023_benchmark_csvs_plain_and_gz(tmp_path):
    folder = tmp_path / "amazon-2023-video-games"
    folder.mkdir()
    body = ("user_id,parent_asin,rating,timestamp\nU1,B2,5.0,1600000000000\nU1,B1,4.0,1500000000000\n"
            "U2,B1,3.0,1550000000000\n")
    (folder / "Video_Games.csv.gz").write_bytes(gzip.compress(body.encode()))
    (folder / "meta_Video_Games.jsonl").write_text(json.dumps({"parent_asin": "B1", "title": "One"}) + "\n")
    d = load_dataset("amazon2023-video-games", tmp_path, kcore=0)
    assert seqs(d) == {"U1": ["B1", "B2"], "U2": ["B1"]}
    assert d.item_titles == ["", "One", ""]
    assert d.timestamps[0][0] == 1_500_000_000
    # last_out_w_his: three files united, the history column ignored
    lo = tmp_path / "lo" / "amazon-2023-video-games"
    lo.mkdir(parents=True)
    hdr = "user_id,parent_asin,rating,timestamp,history\n"
    (lo / "Video_Games.train.csv").write_text(hdr + "U1,B1,4.0,1,\nU1,B2,4.0,2,B1\n")
    (lo / "Video_Games.valid.csv").write_text(hdr + "U1,B3,4.0,3,B1 B2\n")
    (lo / "Video_Games.test.csv").write_text(hdr + "U1,B4,4.0,4,B1 B2 B3\n")
    d2 = load_dataset("amazon2023-video-games", tmp_path / "lo", kcore=0, source="last_out")
    assert seqs(d2) == {"U1": ["B1", "B2", "B3", "B4"]}
    assert len(d2.protocol["sources"]) == 3


def test_amazon2023_raw_review_jsonl(tmp_path):
    folder = tmp_path / "amazon-2023-beauty-and-personal-care"
    folder.mkdir()
    recs = [{"user_id": "U", "parent_asin": "P2", "asin": "A", "timestamp": 2000, "rating": 5.0, "text": "é"},
            {"user_id": "U", "parent_asin": "P1", "asin": "A", "timestamp": 1000, "rating": 1.0, "text": ""}]
    (folder / "Beauty_and_Personal_Care.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    d = load_dataset("amazon2023-beauty", tmp_path, kcore=0)
    assert seqs(d) == {"U": ["P1", "P2"]}
    assert d.protocol["source_format"] == "Amazon Reviews 2023 raw reviews"


def test_history_sample_matches_its_json(shared_data):
    path = shared_data / "amazon-2023-video-games" / "user_histories_5core_sample.jsonl"
    d = load_dataset("amazon2023-video-games", shared_data, kcore=0, source="history_sample")
    by_user = dict(zip(d.user_ids, d.sequences))
    for line in path.read_text().splitlines():
        obj = json.loads(line)
        entries = sorted(obj["history"] + [obj["heldout"]], key=lambda h: h["timestamp_ms"])
        got = [str(d.item_ids[i - 1]) for i in by_user[obj["user_id"]]]
        assert got == [h["parent_asin"] for h in entries]
    assert np.all(d.lengths() == 5)


def test_review_jsonl_fast_and_slow_paths_agree(tmp_path, monkeypatch):
    from ssmrec_lib.data import amazon2023

    recs = [{"user_id": f"U{k % 7}", "parent_asin": f"P{k % 5}", "timestamp": 1000 + k % 4, "images": [{"a": 1}]}
            for k in range(60)] + [{"user_id": "U9", "asin": "A1", "timestamp": 5}]  # no parent_asin: asin
    p = tmp_path / "Video_Games.jsonl.gz"
    p.write_bytes(gzip.compress("\n".join(json.dumps(r) for r in recs).encode()))
    fast = amazon2023.read_reviews_json(p)
    monkeypatch.setattr(amazon2023, "_read_reviews_arrow", lambda *a, **k: None)
    slow = amazon2023.read_reviews_json(p)
    for r in (fast, slow):
        assert len(r) == 61
    assert list(fast.user_vocab[fast.user]) == list(slow.user_vocab[slow.user]) == [r["user_id"] for r in recs]
    assert list(fast.item_vocab[fast.item]) == list(slow.item_vocab[slow.item])
    assert fast.item_vocab[fast.item][-1] == "A1"
    assert np.array_equal(fast.time, slow.time)
    # meta JSONL: fast and slow agree too
    m = tmp_path / "meta.jsonl"
    m.write_text("\n".join(json.dumps({"parent_asin": f"P{k}", "title": f"T{k}", "details": {"x": [1]}})
                           for k in range(5)) + "\n")
    titles = amazon2023.read_meta_titles(m)
    monkeypatch.setattr(amazon2023, "_read_meta_arrow", lambda *a, **k: None)
    assert titles == amazon2023.read_meta_titles(m) == {f"P{k}": f"T{k}" for k in range(5)}
