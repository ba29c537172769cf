import pandas as pd

from ssmrec_lib.cli import main


def test_bench_kernels_quick_writes_the_expected_rows(tmp_path, capsys):
    out = tmp_path / "kernels.csv"
    assert main(["bench", "kernels", "--quick", "--out", str(out)]) == 0
    df = pd.read_csv(out, keep_default_na=False)
    pairs = set(zip(df.op, df.impl))
    assert {("ssd", "quadratic"), ("ssd", "chunked"), ("hydra_mixer", "matrix"), ("hydra_mixer", "chunked"),
            ("selective_scan", "ref"), ("selective_scan", "fast")} <= pairs
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
