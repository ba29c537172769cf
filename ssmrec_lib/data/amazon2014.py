"""Amazon 2014 Beauty and Video Games in SASRec's preprocessed format (kang205/SASRec `data/*.txt`).

Each line is `user item` (integers from 1, space-separated); a user's lines are in time order and there are
no timestamps, so the file order is the time order. The files are *not* 5-core as shipped (users and items with
one interaction exist); the pipeline's default iterated 5-core turns Beauty into the S3-Rec / ICLRec benchmark.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from . import sources
from .pipeline import RawInteractions
from .textio import read_int_table

FOLDER = "amazon-2014-sasrec"
_BASE = "https://raw.githubusercontent.com/kang205/SASRec/master/data/"
REMOTE = {  # sha256 from ../shared/data/amazon-2014-sasrec/SOURCE.md (git blobs of kang205/SASRec@e3738967)
    "amazon2014-beauty": sources.RemoteFile(
        _BASE + "Beauty.txt", "sha256:3cd3d56cee682f5118f22d0443d5d27116075c719ec83bfdfa3e45df33a95e12",
        "Beauty.txt", 4_538_161),
    "amazon2014-video": sources.RemoteFile(
        _BASE + "Video.txt", "sha256:b7376fe24430743f411dc7f567285657b2adb3f74361cc7ba0aee94f3024b651",
        "Video.txt", 3_187_124),
}


def locate(name: str, data_dir=None, *, download: bool = True, downloader=None) -> list[Path]:
    remote = REMOTE[name]
    found = sources.find_files(FOLDER, [remote.filename], data_dir)
    if found is not None:
        return found[1][:1]
    if download:
        try:
            return [sources.fetch(remote, sources.cache_root() / "raw" / FOLDER, downloader=downloader,
                                  dataset=name)]
        except DataError as e:
            raise sources.missing_files_error(name, FOLDER, [remote.filename], data_dir, remote.url,
                                              extra=str(e)) from e
    raise sources.missing_files_error(name, FOLDER, [remote.filename], data_dir, remote.url)


def parse(paths: list[Path]) -> RawInteractions:
    path = paths[0]
    df = read_int_table(path, " ", ["user", "item"], what="'user item' (two integers separated by a space)")
    return RawInteractions.from_columns(
        df["user"].to_numpy(), df["item"].to_numpy(), time=None, sources=[sources.file_record(path)],
        order_note="file order (SASRec's files list each user's items in time order)",
        notes={"source_format": "SASRec user-item text file"},
    )
