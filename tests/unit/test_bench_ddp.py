"""`bench ddp`: 1 and 2 gloo processes started by torchrun train the same global batches; the printed table and
the CSV carry the throughput columns and the ratios between them (the figures themselves depend on the load)."""

import pandas as pd
import pytest

from ssmrec_lib.bench.ddp import COLUMNS, bench_ddp
from ssmrec_lib.cli import main
from ssmrec_lib.errors import UserError


def test_bench_ddp_times_one_and_two_processes(tmp_path, capsys):
    out = tmp_path / "ddp.csv"
    assert main(["bench", "ddp", "--nprocs", "1", "2", "--profile", "smoke", "--steps", "2", "--warmup", "1",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    header = next(ln for ln in printed.splitlines() if ln.strip().startswith("nprocs"))
    assert header.split() == COLUMNS
    assert "global batch 64 samples" in printed and "gloo on CPU" in printed
    df = pd.read_csv(out)
    assert list(df["nprocs"]) == [1, 2] and (df["timed_steps"] == 2).all()
    assert df["targets_per_step"].nunique() == 1 and df["targets_per_step"].iloc[0] > df["batch_size"].iloc[0]
    assert (df["sec_per_step"] > 0).all()
    pd.testing.assert_series_equal(df["targets_per_s"], df["targets_per_step"] / df["sec_per_step"],
                                   check_names=False)
    assert df["speedup"].iloc[0] == 1.0
    assert df["speedup"].iloc[1] == pytest.approx(df["sec_per_step"].iloc[0] / df["sec_per_step"].iloc[1])
    assert df["efficiency"].iloc[1] == pytest.approx(df["speedup"].iloc[1] / 2)
    assert list(df["backend"]) == ["none", "gloo"]  # one process is the plain Trainer: nothing distributed
    assert pd.isna(df["allreduce_ms"].iloc[0]) and df["allreduce_ms"].iloc[1] > 0
    assert (df["grad_mb"] == df["params"] * 4 / 2**20).all()
    assert out.with_suffix(".json").exists()


def test_bench_ddp_says_when_an_epoch_is_too_short():
    with pytest.raises(UserError, match="--steps"):
        bench_ddp("sasrec", "synthetic", "smoke", nprocs=(1,), steps=10_000, warmup=1)


def test_layouts_time_processes_by_threads_in_rounds_and_keep_the_median(monkeypatch):
    """`--layouts 1x2 2x1 --rounds 3`: each layout timed 3 times in turn (with its own thread count), the median
    round kept; speed-up against the first layout, efficiency per CPU thread in use."""
    from ssmrec_lib.bench import ddp
    from ssmrec_lib.cli.bench import parse_layouts

    assert parse_layouts(["1x2", "2X1"]) == ((1, 2), (2, 1)) and parse_layouts(None) is None
    with pytest.raises(UserError, match="processes x threads"):
        parse_layouts(["2by1"])
    calls = []
    secs = {(1, 2): iter([3.0, 1.0, 2.0]), (2, 1): iter([0.5, 4.0, 1.0])}

    def fake(spec, n, timeout_s):
        calls.append((n, spec["threads"]))
        return {"sec_per_step": next(secs[(n, spec["threads"])]), "targets_per_step": 100.0,
                "samples_per_step": 16.0, "allreduce_ms": None, "grad_mb": 1.0}

    monkeypatch.setattr(ddp, "run_configuration", fake)
    df = bench_ddp("sasrec", "synthetic", "smoke", layouts=((1, 2), (2, 1)), rounds=3, log=lambda m: None)
    assert calls == [(1, 2), (2, 1)] * 3  # in turn, round after round
    assert list(df["sec_per_step"]) == [2.0, 1.0]  # the median of each layout's rounds
    assert list(df["threads_per_proc"]) == [2, 1] and df["speedup"].iloc[1] == pytest.approx(2.0)
    assert df["efficiency"].iloc[1] == pytest.approx(2.0)  # both layouts use 2 threads
    assert df["sec_per_step_rounds"].iloc[0] == "1.0000;2.0000;3.0000"
    with pytest.raises(UserError, match="--rounds"):
        bench_ddp("sasrec", "synthetic", "smoke", rounds=0)
