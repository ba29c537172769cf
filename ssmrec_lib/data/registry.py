"""Datasets by name: `load_dataset(name, data_dir=None, *, kcore=5, cache=True, **options) -> SequenceData`.

`name` may be a dataset spec (spec.py): "csv:FILE?sep=\\t&header=false&columns=user,item,rating,timestamp" is
`load_dataset("csv", path=FILE, sep="\\t", header=False, columns=[...])`; keyword options win over the spec's.

Every real dataset goes: locate files (explicit folder -> $SSMREC_DATA_DIR -> cache -> download; see
`sources`) -> cache look-up keyed by (name, source sha256s, options, pipeline version) -> parse ->
`pipeline.build_sequences` (order, dedup, iterated k-core, re-index) -> atomic cache write.

Options common to every file-based dataset: `kcore` (both sides; 0 disables), `user_k` / `item_k` (override one
side), `dedup` ("exact" | "user_item" | "none"), `download` (default True), `downloader` (a callable
`(url, dest_path)`, for tests). Dataset-specific options are listed in `DATASETS[name].options`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import DataError, UnknownNameError
from ..utils import safe_name
from . import amazon2014, amazon2023, cache as cache_mod, generic, ml1m
from .pipeline import PIPELINE_VERSION, RawInteractions, build_sequences
from .sources import file_record
from .spec import parse_dataset_spec
from .synthetic import make_synthetic, synthetic_options
from .types import SequenceData

log = logging.getLogger(__name__)

PIPELINE_OPTIONS = ("user_k", "item_k", "dedup")
FETCH_OPTIONS = ("download", "downloader")


@dataclass(frozen=True)
class DatasetSpec:
    """locate(data_dir, **locate_opts) -> files; parse(files, **parse_opts) -> RawInteractions."""

    name: str
    description: str
    locate: Callable[..., list[Path]]
    parse: Callable[..., RawInteractions]
    locate_options: tuple[str, ...] = ()
    parse_options: tuple[str, ...] = ()


DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add `spec` under its name, which must be a safe folder name (utils.safe_name): it names cache folders."""
    DATASETS[safe_name(spec.name, "dataset name")] = spec
    return spec


def dataset_names() -> list[str]:
    """Every name `load_dataset` accepts (the file-based ones plus "synthetic")."""
    return sorted([*DATASETS, "synthetic"])


def _spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise UnknownNameError(f"unknown dataset {name!r}; known datasets: {', '.join(dataset_names())}")
    return DATASETS[name]


def prepare_raw(name: str, data_dir=None, **options) -> tuple[DatasetSpec, list[Path], dict, dict, dict]:
    """Locate the files and sort the options into (locate, parse, pipeline) groups; rejects unknown ones."""
    spec = _spec(name)
    allowed = set(spec.locate_options) | set(spec.parse_options) | set(PIPELINE_OPTIONS) | set(FETCH_OPTIONS)
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise DataError(f"dataset {name!r}: unknown option(s) {unknown}; valid: {sorted(allowed)} "
                        f"(plus kcore, cache)")
    loc = {k: v for k, v in options.items() if k in spec.locate_options or k in FETCH_OPTIONS}
    par = {k: v for k, v in options.items() if k in spec.parse_options}
    pipe = {k: v for k, v in options.items() if k in PIPELINE_OPTIONS}
    files = spec.locate(data_dir=data_dir, **loc)
    return spec, files, loc, par, pipe


def load_dataset(name: str, data_dir: str | Path | None = None, *, kcore: int = 5, cache: bool = True,
                 **options: Any) -> SequenceData:
    """Load a dataset by name through the one pipeline; see the module docstring.

    Names: see `dataset_names()`, or a dataset spec (spec.py). "synthetic" takes `make_synthetic`'s keyword
    arguments and is never filtered or cached. "csv" takes path=, user_col=, item_col=, time_col=, sep=,
    header=, columns=, encoding=, time_unit= (generic.load_interactions_csv). Returns SequenceData with
    sequences[u] (int64 ids in 1..n_items, oldest first); a csv file's data are named `csv-<file stem>`.
    """
    ref = parse_dataset_spec(name)
    name, options = ref.name, {**ref.options, **options}
    kcore = int(options.pop("kcore", kcore))
    if name == "synthetic":
        data = make_synthetic(**synthetic_options(options))
        data.protocol.setdefault("counts", {"after_filter": _counts(data)})
        return data
    spec, files, _, par, pipe = prepare_raw(name, data_dir, **options)
    records = [file_record(p) for p in files]
    key_opts = {"kcore": kcore, **pipe, **{k: v for k, v in par.items()}}
    key = cache_mod.cache_key(name, records, key_opts, PIPELINE_VERSION)
    folder = cache_mod.cache_dir(name, key)
    if cache:
        hit = cache_mod.load(folder)
        if hit is not None:
            log.info("%s: prepared data from cache %s", ref.label, folder)
            hit.name = ref.label
            return hit
    t0 = time.perf_counter()
    raw = spec.parse(files, **par)
    data = build_sequences(raw, ref.label, kcore=kcore, **pipe)
    data.protocol["cache_key"] = key
    log.info("%s: prepared in %.1f s (%d users, %d items, %d interactions)", name, time.perf_counter() - t0,
             data.n_users, data.n_items, data.n_interactions)
    if cache:
        cache_mod.save(data, folder)
    return data


def _counts(data: SequenceData) -> dict:
    lens = data.lengths()
    n = int(lens.sum())
    return {"users": data.n_users, "items": data.n_items, "interactions": n,
            "mean_len": float(lens.mean()) if n else 0.0,
            "median_len": float(np.median(lens)) if n else 0.0,
            "density": n / (data.n_users * data.n_items) if n else 0.0}


# ---------------------------------------------------------------- the registry

register_dataset(DatasetSpec(
    "ml-1m", "MovieLens-1M (GroupLens): ratings.dat or the 5-core sequence file; titles/genres from movies.dat",
    locate=ml1m.locate, parse=ml1m.parse, locate_options=("source",), parse_options=("encoding",)))

for _name, _desc in (("amazon2014-beauty", "Amazon 2014 Beauty, SASRec's Beauty.txt"),
                     ("amazon2014-video", "Amazon 2014 Video Games, SASRec's Video.txt")):
    register_dataset(DatasetSpec(
        _name, _desc,
        locate=lambda data_dir=None, _n=_name, **kw: amazon2014.locate(_n, data_dir, **kw),
        parse=amazon2014.parse))

for _name, (_cat, *_rest) in amazon2023.CATEGORIES.items():
    register_dataset(DatasetSpec(
        _name, f"Amazon Reviews 2023 {_cat} (5-core benchmark CSV, raw reviews, or the offline samples)",
        locate=lambda data_dir=None, _n=_name, **kw: amazon2023.locate(_n, data_dir, **kw),
        parse=lambda files, _n=_name, **kw: amazon2023.parse(files, name=_n, **kw),
        locate_options=("source", "meta")))

register_dataset(DatasetSpec(
    "csv", "your own CSV/TSV file with user, item and timestamp columns (csv:FILE; README: Your own data)",
    locate=lambda data_dir=None, path=None, download=True, downloader=None: generic.locate(path, data_dir),
    parse=lambda files, **kw: generic.load_interactions_csv(files[0], **kw),
    locate_options=("path",),
    parse_options=("user_col", "item_col", "time_col", "sep", "header", "columns", "encoding", "time_unit")))
