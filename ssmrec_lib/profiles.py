"""Training profiles: named bundles of overrides for TrainConfig and each model's config.

    smoke  seconds: a tiny model, 8 short epochs (enough to beat Pop on the synthetic transitions); for CI, notebooks' smoke runs and tests (synthetic data).
    quick  ML-1M in a few minutes per model on 2 CPU cores: d = 64, max_len 100, 10 epochs of 64 users per step,
           lr 3e-3, patience 3. Measured (SASRec, quiet 2-core machine): ~19 s/epoch, 3.3 min in all, validation
           NDCG@10 0.097 at epoch 10 (still rising). NOT the paper's numbers: they show the pipeline and the trend.
    full   the paper's model settings: d = 64, max_len 200 on ML-1M (50 on the Amazon sets, as Mamba4Rec); 50 epochs
           of 64 users per step at lr 3e-3 (one epoch of linear warm-up, cosine decay to 0), early stopping on
           validation NDCG@10 with patience 10. Why not lr 1e-3, batch 128, constant: on 2 cores that needs far more
           than an evening (mamba2rec: validation NDCG@10 0.136 after 30 epochs / 1,410 steps, +0.001 per epoch).
           The ML-1M reproduction (`make reproduce-ml1m`, REPRO_SET in the Makefile) trains on top of this profile
           with windows=all, 16 users per step, lr 2e-3, 400 warm-up steps, 30 epochs: 4x the optimizer steps per
           epoch at the same cost per epoch on CPU; Mamba4Rec reached the same validation NDCG@10 (0.1605 against
           0.1597) in 30 epochs instead of 50. The profile itself is unchanged so that its committed runs (the run
           id hashes the --set overrides) keep their meaning.
Every causal model trains with all-position next-item CE (objective "auto"): the same information as RecBole's
prefix augmentation in one pass per sequence; `--set objective=last_item` gives the RecBole protocol.
`--set` overrides are applied on top of the profile (train_cli.py).
"""

from __future__ import annotations

from typing import Any

from .errors import UnknownNameError

PROFILE_NAMES = ("smoke", "quick", "full")

_TRAIN: dict[str, dict[str, Any]] = {
    "smoke": dict(epochs=8, batch_size=64, max_len=20, max_batches_per_epoch=16, patience=8, eval_batch_size=256,
                  lr=3e-3),
    "quick": dict(epochs=10, batch_size=64, max_len=100, patience=3, lr=3e-3),
    "full": dict(epochs=50, batch_size=64, max_len=200, patience=10, lr=3e-3, schedule="cosine", warmup_steps=95),
}

# per model, per profile: only what differs from the model's config defaults (d = 64 everywhere but smoke)
_SMOKE_SSM = dict(d_model=16, d_ff=32, n_layers=1, dropout=0.1)
_MODEL: dict[str, dict[str, dict[str, Any]]] = {
    "smoke": {
        "sasrec": dict(d_model=16, d_ff=32, n_layers=1, n_heads=1, dropout=0.1, attn_dropout=0.1),
        "bert4rec": dict(d_model=16, d_ff=32, n_layers=1, n_heads=1, dropout=0.1, attn_dropout=0.1),
        "gru4rec": dict(d_model=16, hidden_size=16, dropout=0.1),
        "lrurec": dict(d_model=16, d_ff=32, n_layers=1, dropout=0.1),
        "mamba4rec": {**_SMOKE_SSM, "d_state": 8},
        "mamba2rec": {**_SMOKE_SSM, "d_state": 8, "headdim": 8, "chunk_size": 16},
        "hydra4rec": {**_SMOKE_SSM, "d_state": 8, "headdim": 8, "chunk_size": 16},
    },
    "quick": {},
    "full": {},
}

# dataset-specific training overrides (full / quick): shorter histories on the Amazon sets
_DATASET: dict[str, dict[str, Any]] = {"amazon": dict(max_len=50)}


def profile_overrides(profile: str, model: str, dataset: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """-> (TrainConfig overrides, model config overrides) for `profile`, `model`, `dataset`."""
    if profile not in _TRAIN:
        raise UnknownNameError(f"unknown profile {profile!r}; available: {', '.join(PROFILE_NAMES)}")
    train = dict(_TRAIN[profile])
    if profile != "smoke" and dataset.startswith("amazon"):
        train.update(_DATASET["amazon"])
    return train, dict(_MODEL[profile].get(model, {}))
