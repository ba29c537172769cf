"""LLM recommenders end to end on a tiny synthetic dataset: run folders readable by reporting.flatten_run."""

import json
import socket

import pytest

from ssmrec_lib.data.synthetic import make_synthetic
from ssmrec_lib.llm.experiment import run_llm_experiment
from ssmrec_lib.reporting import collect_runs

METRICS = [f"{m}@{k}" for m in ("hr", "ndcg", "mrr") for k in (5, 10, 20)]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")

    def refuse(*a, **k):
        raise AssertionError("a test tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def _tiny():
    return make_synthetic(n_users=40, n_items=30, min_len=5, max_len=12, seed=1)


def _check(r, run_dir, model):
    for which in ("valid", "test"):
        assert all(0.0 <= r[which][k] <= 1.0 for k in METRICS)
        assert r[which]["hr@5"] <= r[which]["hr@10"] <= r[which]["hr@20"]
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["backbone"]["pretrained"] is False and cfg["backbone"]["n_params"] > 0
    assert r["latency"]["median_ms_per_user"] > 0 and r["latency"]["batch"] == 1
    row = collect_runs(run_dir.parent).set_index("model").loc[model]
    assert row["params"] == r["n_params"]["with_embeddings"] and row["hr@10"] == r["test"]["hr@10"]


def test_gpt4rec_tiny_run_end_to_end(tmp_path):
    over = dict(max_eval_users=12, max_train_users=30, epochs=1)
    r = run_llm_experiment("gpt4rec", "synthetic", "smoke", 0, over, out=str(tmp_path), data=_tiny())
    _check(r, tmp_path / r["run_id"], "gpt4rec")
    assert r["protocol"]["test"]["eval_users"].startswith("12 of 40")
    assert "miss" in r["protocol"]["test"]["ranking"]


def test_llamarec_tiny_run_end_to_end(tmp_path):
    over = dict(max_eval_users=12, max_train_users=30)
    r = run_llm_experiment("llamarec", "synthetic", "smoke", 0, over, out=str(tmp_path), data=_tiny())
    _check(r, tmp_path / r["run_id"], "llamarec")
    assert r["backbone"]["lora_params"] > 0
    # a ranking of the retriever's 20 candidates can only hit where the retriever did
    assert r["test"]["hr@20"] == pytest.approx(r["retriever_test_recall@20"])  # re-ranking 20 keeps the 20
    assert r["retriever_test"]["hr@20"] == pytest.approx(r["retriever_test_recall@20"])
