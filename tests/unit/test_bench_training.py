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


def test_profile_step_sections_add_up():
    from ssmrec_lib.bench.step import SECTIONS, profile_step

    df = profile_step(["sasrec", "hydra4rec"], dataset="synthetic", profile="smoke", steps=2, warmup=1,
                      overrides={"ce_chunk": 16}, log=lambda *_: None)
    assert list(df["objective"]) == ["next_item", "cloze"]
    secs = df[[f"{s}_ms" for s in SECTIONS]]
    assert (secs > 0).all().all() and (df["timed_steps"] == 2).all() and (df["ce_chunk"] == 16).all()
    assert ((secs.sum(axis=1) - df["step_ms"]).abs() < 1e-6).all()
    assert (df["targets_per_step"] >= 1).all()


def test_compare_runs_both_paths_side_by_side():
    from ssmrec_lib.bench.compare import compare_training

    paths = {"old": {}, "new": {"ce_chunk": 8, "bf16": True}}
    df, curves = compare_training(["sasrec"], paths, dataset="synthetic", profile="smoke", steps=4, points=2,
                                  warmup=1, timed=2, log=lambda *_: None)
    assert list(df["path"]) == ["old", "new"] and df["speedup"].iloc[0] == 1.0
    assert (df["targets_per_s"] > 0).all() and (df["targets_per_epoch"] == df["targets_per_epoch"].iloc[0]).all()
    assert (df["timed_batches"] == 2).all() and (df["steps"] == 4).all() and (df["peak_rss_mb"] >= 0).all()
    assert list(curves["step"]) == [2, 4, 2, 4] and curves["valid_ndcg@10"].between(0, 1).all()
    # same seed, same first batches: the two paths differ only by float rounding (bf16) after 4 steps
    a, b = (curves[curves["path"] == p]["train_loss"].to_numpy() for p in ("old", "new"))
    assert abs(a[0] - b[0]) < 0.05 * a[0] and a[0] != b[0]
