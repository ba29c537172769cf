"""MovieLens-1M (GroupLens): the raw `ratings.dat`, or the 5-core sequence file; titles and genres from
`movies.dat`.

Files accepted in the dataset folder (`ml-1m/`):
- `ratings.dat`: `UserID::MovieID::Rating::Timestamp` (seconds). Every rating is an interaction (min rating 0,
  as SASRec / LRURec). Ties on a user's timestamp are broken by MovieID ascending, as LRURec sorts by
  (timestamp, item id): the parser pre-sorts rows that way and the pipeline's sort is stable.
- `ml-1m_5core_sequences_time_ordered.tsv[.gz]`: tab-separated `user_id, movie_id, seq_pos` with a header,
  each user's interactions numbered 1.. in time order (no timestamps). Already a 5-core fixed point.
- `movies.dat`: `MovieID::Title::Genres` in ISO-8859-1. Titles are HTML-unescaped (`html.unescape`): the file's
  one entity, `Et Dieu&#8230;Cr\xe9a la Femme`, becomes "Et Dieu…Créa la Femme". Genres stay "A|B|C".
With `source="auto"`, ratings.dat wins over the sequence file when a folder holds both; a folder holding only
`ml-1m.zip` (downloaded by hand) has it verified and extracted into the cache.
When no folder holds either, the official zip is downloaded (md5 published by GroupLens) into the cache.
"""

from __future__ import annotations

import html
import logging
from pathlib import Path

import numpy as np

from ..errors import DataError
from . import sources
from .pipeline import RawInteractions
from .textio import encoding_error, first_bad_line, malformed, open_text, read_int_table

log = logging.getLogger(__name__)

FOLDER = "ml-1m"
URL = "https://files.grouplens.org/datasets/movielens/ml-1m.zip"
# md5 as published by GroupLens (ml-1m.zip.md5) and used by several loaders; no official sha256 exists.
ZIP = sources.RemoteFile(url=URL, known_hash="md5:c4d9eecfca2ab87c1945afe126590906", filename="ml-1m.zip")
# sha256 of the original files (checked against ../shared/data/ml-1m/SOURCE.md), verified after extraction.
MEMBER_SHA256 = {
    "movies.dat": "0140fc2356357c1a851d0f52e893a1e4d3696df632c4141cea8d5bc3d621f0b9",
    "users.dat": "1dc3a95300cb19f7c10e027daf29b8cdf1d908dab65b5edfb45950aa389a10a3",
    "README": "2d5ddce86ccbd247207456165827b4b9ddf27282bca93807d4c763e28414f133",
}
# the official members inflate to 24,905,384 bytes (ratings.dat 24,594,131); an archive declaring more than 4x that
# is refused before extraction (sources.extract_zip: a zip bomb)
MAX_EXTRACT_BYTES = 100_000_000
RATINGS = "ratings.dat"
SEQUENCES = "ml-1m_5core_sequences_time_ordered.tsv*"
PATTERNS = {"ratings": [RATINGS, "ml-1m.zip"], "sequences": [SEQUENCES], "auto": [RATINGS, SEQUENCES, "ml-1m.zip"]}


def locate(data_dir=None, *, source: str = "auto", download: bool = True, downloader=None) -> list[Path]:
    """[ratings or sequence file, movies.dat (if present)] from the lookup order; downloads when allowed."""
    if source not in PATTERNS:
        raise DataError(f"ml-1m: source must be one of {sorted(PATTERNS)}, got {source!r}")
    found = sources.find_files(FOLDER, PATTERNS[source], data_dir)
    if found is None and download and source != "sequences":
        found = _download(data_dir, downloader)
    if found is None:
        raise sources.missing_files_error("ml-1m", FOLDER, PATTERNS[source], data_dir, URL,
                                          extra="Unzip ml-1m.zip there (ratings.dat + movies.dat).")
    folder, files = found
    if files[0].name == "ml-1m.zip":  # a zip someone downloaded by hand: verify, extract into the cache
        folder, files = _download(data_dir, downloader, local_zip=files[0])
    movies = folder / "movies.dat"
    return [files[0]] + ([movies] if movies.is_file() else [])


def _download(data_dir, downloader, local_zip: Path | None = None) -> tuple[Path, list[Path]]:
    dest = sources.cache_root() / "raw" / FOLDER
    if local_zip is not None:
        if not sources.hash_matches(local_zip, ZIP.known_hash):
            raise DataError(f"{local_zip}: checksum mismatch (expected {ZIP.known_hash}); a partial or altered "
                            f"download? Fetch it again from {URL}.")
        zip_path = local_zip
    else:
        try:
            zip_path = sources.fetch(ZIP, dest, downloader=downloader, dataset="ml-1m")
        except DataError as e:
            raise sources.missing_files_error("ml-1m", FOLDER, [RATINGS, SEQUENCES], data_dir, URL,
                                              extra=str(e)) from e
    sources.extract_zip(zip_path, {f"ml-1m/{m}": m for m in ("movies.dat", "users.dat", "README", RATINGS)},
                        dest, expected_sha256=MEMBER_SHA256, max_bytes=MAX_EXTRACT_BYTES)
    return dest, [dest / RATINGS]


def parse(paths: list[Path], *, encoding: str = "latin-1") -> RawInteractions:
    main = paths[0]
    if main.name == RATINGS or main.suffix == ".dat":
        raw = read_ratings(main, encoding=encoding)
    else:
        raw = read_sequences(main)
    movies = next((p for p in paths[1:] if p.name == "movies.dat"), None)
    if movies is not None:
        raw.item_titles, raw.item_genres = read_movies(movies, encoding=encoding)
        raw.sources.append(sources.file_record(movies))
    else:
        log.warning("ml-1m: no movies.dat next to %s: item titles and genres are not loaded", main)
    return raw


def read_ratings(path: Path, encoding: str = "latin-1") -> RawInteractions:
    """ratings.dat -> RawInteractions (rows pre-sorted by MovieID so timestamp ties break by item id)."""
    df = read_int_table(path, "::", ["user", "item", "rating", "time"],
                        what="UserID::MovieID::Rating::Timestamp", encoding=encoding)
    df = df.sort_values("item", kind="stable")
    return RawInteractions.from_columns(
        df["user"].to_numpy(), df["item"].to_numpy(), time=df["time"].to_numpy(), time_unit="s",
        sources=[sources.file_record(path)], order_note="MovieID ascending (LRURec's (timestamp, item id))",
        notes={"source_format": "ml-1m ratings.dat", "ratings_kept": "all (min rating 0)"},
    )


def read_sequences(path: Path) -> RawInteractions:
    """The 5-core sequence TSV (user_id, movie_id, seq_pos) -> RawInteractions in (user, seq_pos) order."""
    df = read_int_table(path, "\t", ["user_id", "movie_id", "seq_pos"], header=True,
                        what="user_id<TAB>movie_id<TAB>seq_pos")
    key = df["user_id"].to_numpy() * (int(df["seq_pos"].max()) + 1) + df["seq_pos"].to_numpy()
    order = np.argsort(key, kind="stable")
    if np.any(np.diff(key[order]) == 0):
        r = int(order[np.flatnonzero(np.diff(key[order]) == 0)[0] + 1])
        raise DataError(f"{path}, line {r + 2}: user {df['user_id'].iat[r]} has seq_pos {df['seq_pos'].iat[r]} "
                        f"twice; expected each user's positions to be distinct")
    df = df.iloc[order]
    return RawInteractions.from_columns(
        df["user_id"].to_numpy(), df["movie_id"].to_numpy(), time=None,
        sources=[sources.file_record(path)], order_note="seq_pos (the file's time order; no timestamps)",
        notes={"source_format": "ml-1m 5-core sequence file"},
    )


def read_movies(path: Path, encoding: str = "latin-1") -> tuple[dict[str, str], dict[str, str]]:
    """movies.dat -> ({movie id: title (HTML-unescaped)}, {movie id: "Genre|Genre"})."""
    titles: dict[str, str] = {}
    genres: dict[str, str] = {}

    def check(line: str) -> str | None:
        parts = line.split("::")
        if len(parts) != 3 or not parts[0].isdigit():
            return "expected MovieID::Title::Genres"
        return None

    try:
        with open_text(path, encoding=encoding) as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError as e:
        raise encoding_error(path, encoding, e) from e
    bad = first_bad_line(lines, check)
    if bad:
        raise malformed(path, *bad)
    for line in lines:
        if line.strip():
            mid, title, genre = line.split("::")
            titles[mid] = html.unescape(title)
            genres[mid] = genre
    return titles, genres
