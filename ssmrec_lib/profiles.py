"""Every budget in one table: named bundles of overrides, per model family, plus what each workbook profile runs.

    sequence models   _TRAIN / _MODEL / _DATASET -> profile_overrides(profile, model, dataset) (experiment.py)
    GPT4Rec, MamRec   GEN_PROFILES       (llm/gpt4rec.py gen_config)
    LlamaRec          LLAMAREC_PROFILES  (llm/llamarec.py llamarec_config)
    workbook          WORKBOOK_PROFILES  (report/workbook.py: datasets, models, seeds, benchmark sizes)
The three profile names mean the same budget everywhere. Plain values only: this module imports nothing but
errors.py, so every layer can read it.

Sequence-model profiles:

    smoke  seconds: a tiny model, 8 short epochs (enough to beat Pop on the synthetic transitions); for CI, notebooks' smoke runs and tests (synthetic data).
    quick  ML-1M on 2 CPU cores: d = 64, max_len 100, 10 epochs of 64 users per step, lr 3e-3, patience 3.
           The committed quick runs (commit e607897, outputs/quick/runs/*_bf21a9e8/log.jsonl; removed from the tree
           with the other stale runs in 03cd766) took, per epoch of training on a shared 2-core machine: SASRec
           105.9 s (20-160 s), Mamba4Rec 33.4 s, Mamba2Rec 112.4 s, Hydra4Rec 50.1 s; SASRec 18.4 min in all with
           validation, NDCG@10 0.097 at epoch 10 (still rising). NOT the paper's numbers: they show the pipeline
           and the trend.
    full   the paper's model settings: d = 64, max_len 200 on ML-1M (50 on the Amazon sets, as Mamba4Rec); 50 epochs
           of 64 users per step at lr 3e-3 (one epoch of linear warm-up, cosine decay to 0), early stopping on
           validation NDCG@10 with patience 10, instead of Mamba4Rec's lr 1e-3, batch 128, constant, which learned
           too slowly for 2 cores in a probe whose log was not kept (so no figure is given for it).
           The ML-1M reproduction (`make reproduce-ml1m`) trains on top of this profile with the Makefile's
           REPRO_SET. The one committed at fd8f45c used windows=all, 16 users per step, lr 2e-3, 400 warm-up steps,
           30 epochs: 4x the optimizer steps per epoch; Mamba4Rec reached the same validation NDCG@10 (0.1605
           against 0.1597) in 30 epochs instead of 50 (runs mamba4rec_ml-1m_full_s0_9b83a552 and _67e4e851 at
           e607897; 56 and 105 s per epoch, shared machine).
           The profile itself is unchanged, so runs made with it stay comparable.
Every causal model trains with all-position next-item CE (objective "auto"): the same information as RecBole's
prefix augmentation in one pass per sequence; `--set objective=last_item` gives the RecBole protocol.
`--set` overrides are applied on top of the profile (experiment.resolve_configs).
"""

from __future__ import annotations

from dataclasses import dataclass
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


# ------------------------------------------------------------------------------------------------ LLM models
LLM_MODELS = ("gpt4rec", "mamrec", "llamarec")

# GPT4Rec / MamRec (llm/gpt4rec.py GPT4RecConfig), sizes of the from-scratch backbone and of the fine-tuning /
# evaluation sets:
#   smoke  seconds, for tests and CI: d=32, 1 layer, a few dozen users
#   quick  minutes on 2 CPU cores: d=64, 2 layers, 3 epochs, 500 evaluation users
#   full   d=128, 4 layers, 10 epochs, every user
GEN_PROFILES: dict[str, dict[str, Any]] = {
    "smoke": dict(d_model=32, n_layers=1, n_queries=3, max_new_tokens=8, epochs=2, examples_per_user=2,
                  max_train_users=64, max_eval_users=32, max_items=5),
    "quick": dict(d_model=64, n_layers=2, epochs=3, examples_per_user=2, max_eval_users=500),
    "full": dict(d_model=128, n_layers=4, epochs=10, examples_per_user=8, max_eval_users=0),
}

# LlamaRec (llm/llamarec.py LlamaRecConfig); retriever_profile: the LRURec run's profile (the tables above)
LLAMAREC_PROFILES: dict[str, dict[str, Any]] = {
    "smoke": dict(d_model=32, n_layers=1, retriever_profile="smoke", pretrain_epochs=1, epochs=1,
                  max_train_users=64, max_eval_users=32, max_items=5),
    "quick": dict(epochs=2, max_train_users=2000, max_eval_users=500),
    "full": dict(d_model=128, n_layers=4, retriever_profile="full", pretrain_epochs=5, epochs=5),
}


# ------------------------------------------------------------------------------------------------ workbook
CORE_MODELS = ["sasrec", "mamba4rec", "mamba2rec", "hydra4rec"]


@dataclass(frozen=True)
class WorkbookProfile:
    """What one workbook profile runs; the training budgets are the tables above under the same name."""

    datasets: tuple[str, ...]
    models: tuple[str, ...]
    # LLM recommenders, trained by the same 03_train notebook with the LLM profile of the same name
    # (GEN_PROFILES, LLAMAREC_PROFILES); LlamaRec also trains (or reuses) its LRURec retriever run
    llm_models: tuple[str, ...] = ()
    seeds: tuple[int, ...] = (0,)
    latency_lengths: str = "50,200,1000"
    latency_batches: str = "1,256"
    stream_lengths: str = "200,1000,4000"
    description: str = ""


WORKBOOK_PROFILES: dict[str, WorkbookProfile] = {
    "smoke": WorkbookProfile(
        datasets=("synthetic",),
        models=("pop", *CORE_MODELS),
        llm_models=LLM_MODELS,  # a few seconds each on the synthetic data (tiny from-scratch backbones)
        latency_lengths="16,64",
        latency_batches="1,8",
        stream_lengths="16,64",
        description="synthetic data, tiny models: minutes on 2 cores (CI runs it)",
    ),
    "quick": WorkbookProfile(
        datasets=("ml-1m",),
        models=("pop", *CORE_MODELS),
        # measured on ML-1M, 1 CPU thread: GPT4Rec's quick run ~5 min; MamRec's had not finished after 20 min
        # (transformers' reference Mamba path without mamba-ssm), LlamaRec's is unmeasured. Both stay in `full`
        # and run on request: `workbook --profile quick --models mamrec llamarec`.
        llm_models=("gpt4rec",),
        latency_lengths="50,200,1000",
        description="ML-1M, all core models and GPT4Rec's row, a short budget (aim: under 30 minutes on 2 cores)",
    ),
    "full": WorkbookProfile(
        datasets=("ml-1m",),
        models=("pop", "gru4rec", "bert4rec", "lrurec", *CORE_MODELS),
        # LlamaRec reuses the lrurec run above as its retriever (same run id). Not measured yet: the LLM full
        # profile scores every user each epoch (beam search per user), hours per model and seed on 2 CPU cores
        llm_models=LLM_MODELS,
        seeds=(0, 1, 2),
        latency_lengths="50,200,1000,4000",
        description="the paper's settings (d=64, max length 200) to early stopping, 3 seeds",
    ),
}
