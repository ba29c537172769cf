"""Bad input gets a DataError that says what, where and how to fix it; downloads are verified (no network)."""

import gzip
import hashlib
import io
import time
import zipfile
from pathlib import Path

import pytest

from ssmrec_lib.data import load_dataset, ml1m, sources
from ssmrec_lib.errors import DataError


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SSMREC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("SSMREC_DATA_DIR", raising=False)


def no_network(url, dest):
    raise ConnectionError(f"Failed to resolve host for {url}")


# ---------------------------------------------------------------- missing files / no network


def test_missing_file_says_where_how_and_url(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset("ml-1m", tmp_path / "nowhere", download=False)
    msg = str(e.value)
    assert str(tmp_path / "nowhere") in msg and str(tmp_path / "cache" / "raw" / "ml-1m") in msg
    assert "ratings.dat" in msg and "SSMREC_DATA_DIR" in msg and ml1m.URL in msg


def test_no_network_fails_with_clear_error(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset("amazon2014-beauty", tmp_path, downloader=no_network)
    msg = str(e.value)
    assert "could not download" in msg and "Beauty.txt" in msg and "No network?" in msg
    assert not list((tmp_path / "cache" / "raw" / "amazon-2014-sasrec").glob("*"))  # nothing half-written


def test_unreachable_host_fails_fast(tmp_path):
    remote = sources.RemoteFile("http://127.0.0.1:9/x.txt", "sha256:" + "0" * 64, "x.txt")
    t0 = time.perf_counter()
    with pytest.raises(DataError, match="could not download"):
        sources.fetch(remote, tmp_path / "dl")
    assert time.perf_counter() - t0 < 10
    assert list((tmp_path / "dl").iterdir()) == []


# ---------------------------------------------------------------- verified downloads


def _remote_for(path: Path, alg="sha256") -> sources.RemoteFile:
    digest = hashlib.new(alg, path.read_bytes()).hexdigest()
    return sources.RemoteFile(path.as_uri(), f"{alg}:{digest}", path.name)


def test_file_url_download_verified(tmp_path):
    src = tmp_path / "Video.txt"
    src.write_text("1 1\n1 2\n")
    out = sources.fetch(_remote_for(src), tmp_path / "dl")
    assert out.read_text() == "1 1\n1 2\n"
    assert [p.name for p in (tmp_path / "dl").iterdir()] == ["Video.txt"]


def test_corrupt_download_discarded_and_retried(tmp_path):
    src = tmp_path / "good.txt"
    src.write_text("the real content\n")
    remote = _remote_for(src)
    calls = []

    def flaky(url, dest):  # first a truncated file, then the real one
        calls.append(url)
        Path(dest).write_text("the real" if len(calls) == 1 else "the real content\n")

    out = sources.fetch(remote, tmp_path / "dl", downloader=flaky)
    assert len(calls) == 2 and out.read_text() == "the real content\n"


def test_always_corrupt_download_never_kept(tmp_path):
    src = tmp_path / "good.txt"
    src.write_text("content\n")

    def bad(url, dest):
        Path(dest).write_text("garbage")

    with pytest.raises(DataError, match="checksum never matched"):
        sources.fetch(_remote_for(src), tmp_path / "dl", downloader=bad, retries=2)
    assert list((tmp_path / "dl").iterdir()) == []


def test_stale_corrupt_file_in_cache_is_replaced(tmp_path):
    src = tmp_path / "good.txt"
    src.write_text("content\n")
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl" / "good.txt").write_text("partial")
    out = sources.fetch(_remote_for(src), tmp_path / "dl")
    assert out.read_text() == "content\n"


def test_ml1m_download_extract_parse(tmp_path, monkeypatch):
    """The whole download path on a small zip with ml-1m's layout, served from a file:// URL."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ml-1m/ratings.dat", "1::1::5::10\n1::2::5::11\n2::1::4::12\n")
        zf.writestr("ml-1m/movies.dat", "1::A (1990)::Drama\n2::B (1991)::Comedy\n".encode("latin-1"))
        zf.writestr("ml-1m/users.dat", "1::F::1::10::48067\n")
        zf.writestr("ml-1m/README", "readme\n")
    zpath = tmp_path / "served" / "ml-1m.zip"
    zpath.parent.mkdir()
    zpath.write_bytes(buf.getvalue())
    monkeypatch.setattr(ml1m, "ZIP", _remote_for(zpath, alg="md5"))
    monkeypatch.setattr(ml1m, "MEMBER_SHA256", {})
    d = load_dataset("ml-1m", tmp_path / "empty", kcore=0)
    assert (d.n_users, d.n_items, d.n_interactions) == (2, 2, 3)
    assert d.item_titles == ["", "A (1990)", "B (1991)"]
    assert (tmp_path / "cache" / "raw" / "ml-1m" / "ratings.dat").is_file()


# ---------------------------------------------------------------- malformed files


def test_malformed_ratings_line(tmp_path):
    f = tmp_path / "ml-1m"
    f.mkdir()
    (f / "ratings.dat").write_text("1::1::5::10\n1::2::5::11\n2::x::4::12\n")
    with pytest.raises(DataError) as e:
        load_dataset("ml-1m", tmp_path, kcore=0)
    msg = str(e.value)
    assert "ratings.dat, line 3" in msg and "integer" in msg and "2::x::4::12" in msg


def test_malformed_field_count(tmp_path):
    f = tmp_path / "amazon-2014-sasrec"
    f.mkdir()
    (f / "Video.txt").write_text("1 1\n1 2\n1 2 3\n")
    with pytest.raises(DataError, match=r"Video.txt, line 3: .*expected 2 fields"):
        load_dataset("amazon2014-video", tmp_path, kcore=0)


def test_malformed_csv_timestamp(tmp_path):
    p = tmp_path / "e.csv"
    p.write_text("user_id,item_id,timestamp\n1,a,5\n1,b,soon\n")
    with pytest.raises(DataError, match=r"e.csv, line 3: .*integer timestamp"):
        load_dataset("csv", path=p, kcore=0)


def test_malformed_jsonl(tmp_path):
    f = tmp_path / "amazon-2023-video-games"
    f.mkdir()
    (f / "Video_Games.jsonl").write_text('{"user_id": "u", "parent_asin": "p", "timestamp": 1}\n{"user_id": \n')
    with pytest.raises(DataError, match=r"Video_Games.jsonl, line 2: .*invalid JSON"):
        load_dataset("amazon2023-video-games", tmp_path, kcore=0)
    (f / "Video_Games.jsonl").write_text('{"user_id": "u", "parent_asin": "p"}\n')
    with pytest.raises(DataError, match=r"line 1: expected an object with user_id, parent_asin"):
        load_dataset("amazon2023-video-games", tmp_path, kcore=0)


def test_wrong_delimiter(tmp_path):
    p = tmp_path / "e.csv"
    p.write_text("user_id;item_id;timestamp\n1;a;5\n")
    with pytest.raises(DataError, match="semicolon-separated"):
        load_dataset("csv", path=p, kcore=0)
    f = tmp_path / "ml-1m"
    f.mkdir()
    (f / "ratings.dat").write_text("1\t1\t5\t10\n")
    with pytest.raises(DataError, match="tab-separated"):
        load_dataset("ml-1m", tmp_path, kcore=0)


def test_wrong_encoding(tmp_path):
    p = tmp_path / "e.csv"
    p.write_bytes("user_id,item_id,timestamp\nJos\xe9,a,5\n".encode("latin-1"))
    with pytest.raises(DataError, match="cannot decode as utf-8.*encoding="):
        load_dataset("csv", path=p, kcore=0)
    assert load_dataset("csv", path=p, kcore=0, encoding="latin-1").user_ids[0] == "Jos\u00e9"


def test_empty_after_filtering(shared_data):
    with pytest.raises(DataError, match="empty after filtering"):
        load_dataset("amazon2023-video-games", shared_data, source="reviews")  # 3 items, mostly 1 review/user


def test_empty_source(tmp_path):
    p = tmp_path / "e.csv.gz"
    p.write_bytes(gzip.compress(b"user_id,item_id,timestamp\n"))
    with pytest.raises(DataError, match="no interactions"):
        load_dataset("csv", path=p, kcore=0)


def test_ml1m_zip_in_data_dir_verified(tmp_path, monkeypatch):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ml-1m/ratings.dat", "1::1::5::10\n1::2::5::11\n")
        for m in ("movies.dat", "users.dat", "README"):
            zf.writestr(f"ml-1m/{m}", "1::A (1990)::Drama\n" if m == "movies.dat" else "x\n")
    d = tmp_path / "data" / "ml-1m"
    d.mkdir(parents=True)
    (d / "ml-1m.zip").write_bytes(buf.getvalue())
    monkeypatch.setattr(ml1m, "MEMBER_SHA256", {})
    with pytest.raises(DataError, match="checksum mismatch"):  # not the official md5: never parsed
        load_dataset("ml-1m", tmp_path / "data", kcore=0)
    monkeypatch.setattr(ml1m, "ZIP", _remote_for(d / "ml-1m.zip", alg="md5"))
    assert load_dataset("ml-1m", tmp_path / "data", kcore=0).n_interactions == 2


def test_zip_with_altered_member_extracts_nothing(tmp_path, monkeypatch):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for m in ("ratings.dat", "movies.dat", "users.dat", "README"):
            zf.writestr(f"ml-1m/{m}", "1::1::5::10\n")  # movies.dat is not the official file
    zpath = tmp_path / "served" / "ml-1m.zip"
    zpath.parent.mkdir()
    zpath.write_bytes(buf.getvalue())
    monkeypatch.setattr(ml1m, "ZIP", _remote_for(zpath, alg="md5"))
    with pytest.raises(DataError, match="unexpected sha256"):
        load_dataset("ml-1m", tmp_path / "empty", kcore=0)
    raw_dir = tmp_path / "cache" / "raw" / "ml-1m"
    assert sorted(p.name for p in raw_dir.iterdir()) == ["ml-1m.zip"]  # no ratings.dat half-state
