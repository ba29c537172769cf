"""Datasets: registry, download + cache, raw parsers, the one pipeline (dedup, order, k-core, re-index),
leave-one-out splits, batching, the synthetic generator, statistics."""

from .batching import pad_left, padding_mask
from .generic import load_interactions_csv
from .registry import dataset_names, load_dataset
from .stats import dataset_stats, stats
from .synthetic import make_synthetic
from .types import SequenceData, Split, leave_one_out

__all__ = ["SequenceData", "Split", "leave_one_out", "pad_left", "padding_mask", "make_synthetic",
           "load_dataset", "dataset_names", "load_interactions_csv", "stats", "dataset_stats"]
