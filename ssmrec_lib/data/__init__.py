"""Datasets: registry, download + cache, raw parsers, the one pipeline (dedup, order, k-core, re-index),
leave-one-out splits, batching, the synthetic generator, statistics.

    data = load_dataset("ml-1m")                  # SequenceData; see registry.py for names and options
    data = load_dataset("csv:u.data?sep=tab&header=false&columns=user,item,rating,timestamp")  # your own file
    split = data.split()                          # leave-one-out
    stats(data); dataset_stats("amazon2014-beauty")   # the paper's Table 4, as read and after the filter

Modules: registry (names -> loaders), spec (dataset specs: csv:FILE?...), sources (lookup order, verified
downloads), ml1m / amazon2014 / amazon2023 / generic (parsers), csvread + textio (fast readers, line-numbered errors), pipeline (the rules), cache, stats
(the `data` command: cli/data.py).
"""

from .batching import pad_left, padding_mask
from .generic import load_interactions_csv
from .pipeline import RawInteractions, build_sequences
from .registry import dataset_names, load_dataset
from .spec import DatasetRef, format_dataset_spec, parse_dataset_spec, split_dataset_specs
from .stats import dataset_stats, stats, stats_rows
from .synthetic import make_synthetic
from .types import SequenceData, Split, leave_one_out

__all__ = ["SequenceData", "Split", "leave_one_out", "pad_left", "padding_mask", "make_synthetic",
           "load_dataset", "dataset_names", "load_interactions_csv", "stats", "stats_rows", "dataset_stats",
           "RawInteractions", "build_sequences", "DatasetRef", "parse_dataset_spec", "format_dataset_spec",
           "split_dataset_specs"]
