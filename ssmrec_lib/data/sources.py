"""Where dataset files live, and how they get there: explicit folder -> $SSMREC_DATA_DIR -> cache -> download.

Lookup order for a dataset whose files sit in a folder called `folder` (e.g. "ml-1m"):
1. `data_dir` passed by the caller: either that folder itself or a parent holding `<data_dir>/<folder>`;
2. the environment variable SSMREC_DATA_DIR (same two forms);
3. the cache, `$SSMREC_CACHE_DIR/raw/<folder>` (default `~/.cache/ssmrec/raw/<folder>`);
4. a download into the cache, verified by checksum (pooch does the HTTP and the hashing).

Downloads never leave a half-written file where a parser could read it: the file is written to a temporary name
in the target folder, its checksum is compared with the known one, a mismatch deletes it and retries, and only a
verified file is renamed into place.

Glossary: `known_hash` is "alg:hex" as pooch writes it ("sha256:...", "md5:...").
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from ..errors import DataError

log = logging.getLogger(__name__)

ENV_DATA_DIR = "SSMREC_DATA_DIR"
ENV_CACHE_DIR = "SSMREC_CACHE_DIR"
DOWNLOAD_TIMEOUT_S = 20  # connect/read timeout: with no network the download fails within this


def cache_root() -> Path:
    """$SSMREC_CACHE_DIR, else ~/.cache/ssmrec."""
    env = os.environ.get(ENV_CACHE_DIR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ssmrec"


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


_HASH_MEMO: dict[tuple[str, int, int], str] = {}


def file_record(path: str | os.PathLike) -> dict:
    """{"path", "bytes", "sha256"} of a source file (hash memoised per (path, size, mtime) in this process)."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    if key not in _HASH_MEMO:
        _HASH_MEMO[key] = sha256_file(p)
    return {"path": str(p), "name": p.name, "bytes": st.st_size, "sha256": _HASH_MEMO[key]}


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable file: its URL, its known checksum, and the name it gets in the cache folder."""

    url: str
    known_hash: str  # "sha256:<hex>" or "md5:<hex>"
    filename: str
    size: int | None = None


def _candidate_folders(folder: str, data_dir: str | os.PathLike | None) -> list[tuple[str, Path]]:
    out: list[tuple[str, Path]] = []
    for origin, base in (("data_dir argument", data_dir), (f"${ENV_DATA_DIR}", os.environ.get(ENV_DATA_DIR))):
        if base:
            b = Path(base).expanduser()
            out += [(origin, b), (origin, b / folder)]
    out.append(("cache", cache_root() / "raw" / folder))
    return out


def find_files(
    folder: str,
    patterns: Sequence[str],
    data_dir: str | os.PathLike | None = None,
) -> tuple[Path, list[Path]] | None:
    """First folder (in lookup order) holding at least one file matching a pattern (a glob, tried in order).

    Returns (folder, [matching files of the first pattern that matches]) or None.
    """
    for _, d in _candidate_folders(folder, data_dir):
        if not d.is_dir():
            continue
        for pat in patterns:
            hits = sorted(p for p in d.glob(pat) if p.is_file())
            if hits:
                return d, hits
    return None


def looked_in(folder: str, data_dir: str | os.PathLike | None) -> str:
    return "\n".join(f"  - {d} ({origin})" for origin, d in _candidate_folders(folder, data_dir))


def missing_files_error(name: str, folder: str, wanted: Iterable[str], data_dir, url: str | None,
                        extra: str = "") -> DataError:
    msg = (
        f"dataset {name!r}: no source file found. Looked for {', '.join(wanted)} in:\n{looked_in(folder, data_dir)}\n"
        f"Provide the files by putting them in one of those folders (or pass data_dir=..., or set "
        f"${ENV_DATA_DIR} to a folder holding '{folder}/')."
    )
    if url:
        msg += f"\nDownload: {url}"
    if extra:
        msg += "\n" + extra
    return DataError(msg)


# ---------------------------------------------------------------- download

Downloader = Callable[[str, Path], None]


def _default_downloader(url: str, dest: Path) -> None:
    scheme = urllib.parse.urlparse(url).scheme
    if scheme == "file":
        src = urllib.request.url2pathname(urllib.parse.urlparse(url).path)
        shutil.copyfile(src, dest)
        return
    import pooch

    pooch.HTTPDownloader(progressbar=False, timeout=DOWNLOAD_TIMEOUT_S)(url, str(dest), None)



def hash_matches(path: Path, known_hash: str) -> bool:
    import pooch

    alg, _, hexdigest = known_hash.partition(":")
    return pooch.file_hash(str(path), alg=alg).lower() == hexdigest.lower()


def fetch(remote: RemoteFile, dest_dir: Path, *, retries: int = 2, downloader: Downloader | None = None,
          dataset: str = "") -> Path:
    """Download `remote` into `dest_dir/remote.filename` unless a verified copy is there; return its path.

    A file whose checksum does not match is deleted and the download retried (`retries` extra tries);
    a network failure raises DataError at once (no point retrying without a network).
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / remote.filename
    if final.exists():
        if hash_matches(final, remote.known_hash):
            return final
        log.warning("discarding %s: checksum mismatch (expected %s)", final, remote.known_hash)
        final.unlink()
    download = downloader or _default_downloader
    for attempt in range(1 + retries):
        fd, tmp_name = tempfile.mkstemp(dir=dest_dir, prefix=f".{remote.filename}.", suffix=".part")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            log.info("downloading %s (try %d)", remote.url, attempt + 1)
            try:
                download(remote.url, tmp)
            except Exception as e:  # requests.ConnectionError, OSError, HTTP errors ...
                raise DataError(
                    f"dataset {dataset!r}: could not download {remote.url}\n  ({type(e).__name__}: {e})\n"
                    f"No network? Download the file elsewhere and put it at {final} "
                    f"(or in a folder passed as data_dir / ${ENV_DATA_DIR})."
                ) from e
            if hash_matches(tmp, remote.known_hash):
                os.replace(tmp, final)
                return final
            log.warning("checksum mismatch for %s (try %d): discarded", remote.url, attempt + 1)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    raise DataError(
        f"dataset {dataset!r}: {remote.url} downloaded {1 + retries} times, the checksum never matched "
        f"{remote.known_hash}; the partial/corrupt files were discarded. Try again later or download it by hand "
        f"to {final}."
    )


def safe_member_name(name: str) -> bool:
    """A zip member name that stays inside the folder it is extracted to: relative, no '..' part, no drive."""
    parts = name.replace("\\", "/").split("/")
    return bool(name) and not name.startswith(("/", "\\")) and ":" not in parts[0] and ".." not in parts


def extract_zip(zip_path: Path, members: dict[str, str], dest_dir: Path,
                expected_sha256: dict[str, str] | None = None, max_bytes: int = 1 << 30) -> None:
    """Extract `members` (name inside the zip -> file name in dest_dir), all or nothing.

    Checks before anything is written: every member name of the archive stays inside its folder (no absolute
    path, no '..': a "zip slip" archive is refused whole), no wanted member is a symlink, each out name is a plain
    file name, and the wanted members' declared uncompressed sizes add up to at most `max_bytes` (a zip bomb is
    refused before a byte is inflated; reading never goes past a member's declared size).
    Everything is extracted into a temporary folder and checked against `expected_sha256` first; only then are
    the files renamed into `dest_dir`, in the order given (put the file that marks completeness last).
    """
    import stat
    import zipfile

    expected_sha256 = expected_sha256 or {}
    bad_out = [n for n in members.values() if not n or Path(n).name != n or n in (".", "..")]
    if bad_out:
        raise ValueError(f"extract_zip: out names must be plain file names, got {bad_out}")
    try:
        with zipfile.ZipFile(zip_path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{zip_path}: not a readable zip archive ({e}); delete it and download it again") from e
    unsafe = [i.filename for i in infos if not safe_member_name(i.filename)]
    if unsafe:
        raise DataError(f"{zip_path}: refused, members would be written outside the target folder {unsafe[:5]} "
                        f"(a zip-slip archive, not the official file); nothing was extracted. Delete it and download "
                        f"it again")
    by_name = {i.filename: i for i in infos}
    links = [n for n in members if n in by_name and stat.S_ISLNK(by_name[n].external_attr >> 16)]
    if links:
        raise DataError(f"{zip_path}: refused, members {links} are symbolic links; nothing was extracted")
    declared = sum(by_name[n].file_size for n in members if n in by_name)
    if declared > max_bytes:
        raise DataError(f"{zip_path}: refused, its members declare {declared:,} bytes uncompressed, above the "
                        f"limit of {max_bytes:,} for this dataset (a zip bomb or not the official archive); nothing "
                        f"was extracted. Delete it and download it again")
    dest_dir.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(dir=dest_dir, prefix=".extract-"))
    try:
        try:
            with zipfile.ZipFile(zip_path) as zf:
                for inner, out_name in members.items():
                    limit = zf.getinfo(inner).file_size
                    with open(tmp_dir / out_name, "wb") as f, zf.open(inner) as src:
                        if bounded_copy(src, f, limit) > limit:
                            raise DataError(f"{zip_path}: {inner} inflates past its declared size {limit:,}; "
                                            f"nothing was extracted")
        except (zipfile.BadZipFile, KeyError) as e:
            raise DataError(f"{zip_path}: not the expected archive ({e}); delete it and download it again") from e
        for out_name, want in expected_sha256.items():
            if out_name in members.values() and sha256_file(tmp_dir / out_name) != want:
                raise DataError(f"{zip_path}: {out_name} inside has an unexpected sha256 (corrupt or altered "
                                f"archive); nothing was extracted")
        for out_name in members.values():
            os.replace(tmp_dir / out_name, dest_dir / out_name)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def bounded_copy(src, dst, limit: int, chunk: int = 1 << 20) -> int:
    """Copy from `src` to `dst` until EOF or just past `limit` bytes; the bytes read (> limit: stopped early)."""
    n = 0
    while block := src.read(min(chunk, limit + 1 - n)):
        dst.write(block)
        n += len(block)
        if n > limit:
            break
    return n
