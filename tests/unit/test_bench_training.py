"""`bench training`: one row per model with a per-epoch cost derived from timed batches of the real Trainer."""

from ssmrec_lib.bench.training import bench_training


def test_bench_training_rows():
    df = bench_training(["mamba4rec", "hydra4rec"], dataset="synthetic", profile="smoke", steps=2, warmup=1,
                        log=lambda *_: None)
    assert list(df["model"]) == ["mamba4rec", "hydra4rec"]
    assert list(df["objective"]) == ["next_item", "cloze"]
    assert (df["sec_per_batch"] > 0).all() and (df["timed_batches"] == 2).all()
    assert (df["sec_per_epoch"] == df["sec_per_batch"] * df["batches_per_epoch"]).all()
    assert (df["batches_per_epoch"] > 1).all() and (df["valid_seconds"] > 0).all()
    assert (df["params_wo_emb"] < df["params"]).all()
