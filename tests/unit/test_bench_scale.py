"""`bench scale`: Amazon '23 Beauty's shape, tiny here; the projection is computed from the measured figures."""

import math

import numpy as np
import pytest

from ssmrec_lib.bench.scale import BEAUTY23, COLUMNS, MIN_LEN, bench_scale, draw_lengths, h200_estimate, shape
from ssmrec_lib.cli import main as cli_main

TINY = dict(scale=0.001, batch_size=16, n_sampled=20, steps=2, warmup=1, sample_users=96, eval_users=24,
            log=lambda *_: None)


@pytest.fixture(scope="module")
def table():
    return bench_scale(["sasrec"], **TINY)


def test_columns_and_phases(table):
    assert list(table.columns) == COLUMNS
    assert list(table["phase"]) == ["train ce", "train sampled_softmax", "eval full ranking"]
    assert (table["sec_per_batch"] > 0).all() and (table["peak_mem_mb"] >= 0).all()
    assert list(table["timed"]) == [2, 2, 24]


def test_projection_is_computed_from_the_measured_figures(table):
    a = table.attrs
    assert a["shape"] == shape(0.001) and a["shape"]["users"] == round(BEAUTY23["users"] * 0.001)
    train = table[table["phase"].str.startswith("train")]
    assert (train["batches_per_epoch"] == math.ceil(a["users_per_epoch"] / 16)).all()
    ev = table[table["phase"] == "eval full ranking"].iloc[0]
    assert ev["batches_per_epoch"] == math.ceil(a["shape"]["users"] / 512)
    assert np.allclose(table["cpu_sec_per_epoch"], table["sec_per_batch"] * table["batches_per_epoch"])
    assert np.allclose(table["cpu_hours_per_epoch"] * 3600, table["cpu_sec_per_epoch"])
    for _, r in table.iterrows():
        expect = h200_estimate("sasrec", r["phase"], a["shape"]["users"], a["terms_per_epoch"], 64,
                               a["shape"]["items"], 20, a["gpu_tflops"])
        assert r["h200_sec_per_epoch"] == pytest.approx(expect)
    ce, sampled = train["h200_sec_per_epoch"]
    assert ce > sampled  # 211 catalogue columns against 21 sampled ones


def test_the_shape_at_scale_one_is_beauty23_and_lengths_are_heavy_tailed():
    assert shape(1.0) == BEAUTY23
    lens = draw_lengths(200_000, BEAUTY23["interactions"] / BEAUTY23["users"], np.random.default_rng(0))
    assert lens.min() == MIN_LEN
    assert lens.mean() == pytest.approx(9.137, rel=0.03)
    assert np.median(lens) < lens.mean() and lens.max() > 10 * lens.mean()  # a long right tail


def test_full_ce_batches_over_the_memory_budget_are_skipped_not_run():
    df = bench_scale(["sasrec"], **{**TINY, "mem_budget_gb": 1e-6})
    ce = df[df["phase"] == "train ce"].iloc[0]
    assert ce["timed"] == 0 and ce["skipped"] > 0 and math.isnan(ce["sec_per_batch"])
    assert df[df["phase"] == "train sampled_softmax"].iloc[0]["timed"] == 2  # the sampled loss never is


def test_cli_prints_the_table(tmp_path, capsys):
    out = tmp_path / "scale.csv"
    rc = cli_main(["bench", "scale", "--models", "sasrec", "--scale", "0.001", "--batch-size", "16", "--n-sampled",
                   "20", "--steps", "1", "--sample-users", "64", "--eval-users", "16", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0 and out.is_file() and out.with_suffix(".json").is_file()
    assert "cpu_hours_per_epoch" in text and "Beauty shape x 0.001" in text and "needs a GPU measurement" in text
