"""Extracting an archive (ml-1m.zip, downloaded or placed by hand) cannot write outside its target folder and refuses
absurd sizes before inflating anything (data/sources.extract_zip)."""

import hashlib
import io
import stat
import zipfile
from pathlib import Path

import pytest

from ssmrec_lib.data import load_dataset, ml1m, sources
from ssmrec_lib.errors import DataError

MEMBERS = ("ratings.dat", "movies.dat", "users.dat", "README")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SSMREC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("SSMREC_DATA_DIR", raising=False)
    monkeypatch.setattr(ml1m, "MEMBER_SHA256", {})


def _ml1m_zip(extra=(), ratings_zeros_mib=0) -> bytes:
    """A zip with ml-1m's layout; `extra`: (ZipInfo or name, bytes) members added; `ratings_zeros_mib`: a ratings.dat
    of that many MiB of zeros (deflated to ~1 KiB per MiB)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        if ratings_zeros_mib:
            with zf.open("ml-1m/ratings.dat", "w", force_zip64=True) as f:
                for _ in range(ratings_zeros_mib):
                    f.write(bytes(1 << 20))
        else:
            zf.writestr("ml-1m/ratings.dat", "1::1::5::10\n1::2::5::11\n")
        for m in MEMBERS[1:]:
            zf.writestr(f"ml-1m/{m}", "1::A (1990)::Drama\n" if m == "movies.dat" else "x\n")
        for info, data in extra:
            zf.writestr(info, data)
    return buf.getvalue()


def _place(tmp_path, monkeypatch, data: bytes) -> Path:
    """Put the zip where a user would (data/ml-1m/ml-1m.zip) and make its md5 the expected one."""
    d = tmp_path / "data" / "ml-1m"
    d.mkdir(parents=True)
    z = d / "ml-1m.zip"
    z.write_bytes(data)
    monkeypatch.setattr(ml1m, "ZIP", sources.RemoteFile(z.as_uri(), "md5:" + hashlib.md5(data).hexdigest(), z.name))
    return z


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_a_plain_zip_still_extracts(tmp_path, monkeypatch):
    _place(tmp_path, monkeypatch, _ml1m_zip())
    assert load_dataset("ml-1m", tmp_path / "data", kcore=0).n_interactions == 2


@pytest.mark.parametrize("member", ["../evil.txt", "ml-1m/../../evil.txt", "/tmp/evil-abs.txt", "C:/evil.txt",
                                    "..\\evil.txt"])
def test_zip_slip_member_is_refused_and_nothing_is_written(tmp_path, monkeypatch, member):
    z = _place(tmp_path, monkeypatch, _ml1m_zip(extra=[(zipfile.ZipInfo(member), b"pwned\n")]))
    assert member in zipfile.ZipFile(z).namelist()  # the crafted name survived zipfile's writer
    before = _files(tmp_path)
    with pytest.raises(DataError, match=r"ml-1m.zip: refused, members would be written outside.*nothing was extracted"):
        load_dataset("ml-1m", tmp_path / "data", kcore=0)
    assert _files(tmp_path) == before  # no evil.txt anywhere, no ratings.dat in the cache
    assert not Path("/tmp/evil-abs.txt").exists()


def test_zip_bomb_is_refused_before_inflating(tmp_path, monkeypatch):
    # ratings.dat declares 4x + 4 MiB more than ml-1m's official members (ml1m.MAX_EXTRACT_BYTES)
    mib = ml1m.MAX_EXTRACT_BYTES // (1 << 20) + 4
    z = _place(tmp_path, monkeypatch, _ml1m_zip(ratings_zeros_mib=mib))
    assert z.stat().st_size < 1 << 20  # the file itself is small: the size is only declared
    with pytest.raises(DataError, match=r"declare 10\d,\d{3},\d{3} bytes uncompressed, above the limit of 100,000,000"):
        load_dataset("ml-1m", tmp_path / "data", kcore=0)
    assert not (tmp_path / "cache" / "raw" / "ml-1m").exists() or _files(tmp_path / "cache") == []


def test_official_size_is_well_under_the_limit():
    official = 24_594_131 + 171_308 + 134_368 + 5_577  # ratings, movies, users, README of ml-1m.zip
    assert 3 * official < ml1m.MAX_EXTRACT_BYTES < 5 * official


def test_symlink_member_is_refused(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("ml-1m/ratings.dat")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    z = tmp_path / "a.zip"
    z.write_bytes(buf.getvalue())
    with pytest.raises(DataError, match="symbolic links"):
        sources.extract_zip(z, {"ml-1m/ratings.dat": "ratings.dat"}, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_out_names_must_be_plain_file_names(tmp_path):
    z = tmp_path / "a.zip"
    z.write_bytes(_ml1m_zip())
    with pytest.raises(ValueError, match="plain file names"):
        sources.extract_zip(z, {"ml-1m/ratings.dat": "../ratings.dat"}, tmp_path / "out")


def test_not_a_zip_is_a_data_error(tmp_path):
    z = tmp_path / "a.zip"
    z.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match="a.zip: not a readable zip archive"):
        sources.extract_zip(z, {"x": "x"}, tmp_path / "out")
