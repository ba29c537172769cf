import pandas as pd

from ssmrec_lib.cli import main
from ssmrec_lib.ssm import cpu_ext


def test_bench_kernels_quick_writes_the_expected_rows(tmp_path, capsys):
    out = tmp_path / "kernels.csv"
    assert main(["bench", "kernels", "--quick", "--out", str(out)]) == 0
    df = pd.read_csv(out, keep_default_na=False)
    pairs = set(zip(df.op, df.impl))
    assert {("ssd", "quadratic"), ("ssd", "chunked"), ("hydra_mixer", "matrix"), ("hydra_mixer", "chunked"),
            ("selective_scan", "ref"), ("selective_scan", "fast")} <= pairs
    if cpu_ext.available("ssd"):  # the C++ SSD beside the PyTorch path, for the SSD and for Hydra's mixer
        assert {("ssd", "fast"), ("hydra_mixer", "fast")} <= pairs
        assert set(df[df.impl == "fast"].kernel_path) == {"cpu-ext"}
    assert sorted(set(df.L)) == [16, 40]
    assert len(df) == 2 * len(pairs)
    timed = df[df.note == ""]
    assert len(timed) == len(df)  # nothing skipped at smoke sizes
    assert (pd.to_numeric(timed.ms_fwd) > 0).all() and (pd.to_numeric(timed.ms_fwd_bwd) > 0).all()
    ref = df[df.impl.isin(["ref", "quadratic", "matrix"])]
    assert (pd.to_numeric(ref.speedup_fwd_bwd) == 1).all()
    for col in ("device", "threads", "torch", "kernel_path"):
        assert col in df and (df[col].astype(str) != "").all()
    printed = capsys.readouterr().out
    assert "speedup_fwd_bwd" in printed and "hydra_mixer" in printed


def test_bench_latency_times_each_ssm_model_per_kernel_choice_side_by_side(tmp_path, capsys):
    """`bench latency --kernels ref,auto --train-lengths L`: one row per (SSM model, kernel choice, length, mode),
    the resolved path beside the choice; a model without a kernel switch (SASRec) is timed once."""
    out = tmp_path / "latency.csv"
    assert main(["bench", "latency", "--models", "sasrec", "mamba2rec", "--lengths", "8", "--batch", "2",
                 "--repeats", "1", "--kernels", "ref,auto", "--train-lengths", "6", "--out", str(out)]) == 0
    df = pd.read_csv(out, keep_default_na=False)
    got = sorted(zip(df.model, df.kernel_choice.astype(str), df["mode"], df.length))
    assert got == [("mamba2rec", "auto", "inference", 8), ("mamba2rec", "auto", "train_step", 6),
                   ("mamba2rec", "ref", "inference", 8), ("mamba2rec", "ref", "train_step", 6),
                   ("sasrec", "", "inference", 8), ("sasrec", "", "train_step", 6)]
    assert (pd.to_numeric(df.latency_ms_median) > 0).all()
    m2 = df[df.model == "mamba2rec"].set_index("kernel_choice")
    assert set(m2.loc["ref", "kernel"]) == {"ref"}
    assert set(m2.loc["auto", "kernel"]) == {"cpu-ext" if cpu_ext.available("ssd") else "ref"}
    printed = capsys.readouterr().out
    assert "mamba2rec (kernel='ref')" in printed and "mamba2rec (kernel='auto')" in printed


def test_bench_latency_rejects_an_unknown_kernel_choice(capsys):
    assert main(["bench", "latency", "--models", "mamba2rec", "--lengths", "8", "--batch", "1",
                 "--kernels", "cuda"]) != 0
    assert "--kernels: ['cuda'] not among ref, cpu, fused, auto" in capsys.readouterr().err
