"""LLM recommenders end to end on a tiny synthetic dataset: run folders readable by report/tables.flatten_run."""

import json
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from ssmrec_lib.data import pad_left
from ssmrec_lib.data.synthetic import make_synthetic
from ssmrec_lib.llm.experiment import run_llm_experiment
from ssmrec_lib.llm.runs import eval_users
from ssmrec_lib.models.registry import build_model
from ssmrec_lib.report.tables import collect_runs

METRICS = [f"{m}@{k}" for m in ("hr", "ndcg", "mrr") for k in (5, 10, 20)]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")

    def refuse(*a, **k):
        raise AssertionError("a test tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def _tiny(n_items=30):
    return make_synthetic(n_users=40, n_items=n_items, min_len=5, max_len=12, seed=1)


def _retriever_top(retriever_dir, n_items, histories, n=20):
    """(U, n) item ids: the saved LRURec run's top n with each history (and padding) excluded, computed here from
    the run folder (config.json + checkpoint_best.pt) rather than with the library's retrieval helper."""
    conf = json.loads((Path(retriever_dir) / "config.json").read_text())
    max_len = conf["train_config"]["max_len"]
    net = build_model("lrurec", n_items, max_len, conf["model_config"]).eval()
    net.load_state_dict(torch.load(Path(retriever_dir) / "checkpoint_best.pt", weights_only=True)["model"])
    seq, lens = pad_left(list(histories), max_len)
    with torch.no_grad():
        scores = net.score(net.readout(seq, lens)).clone()  # (U, n_items + 1)
    for row, h in zip(scores, histories):
        row[0] = float("-inf")
        row[torch.as_tensor(h)] = float("-inf")
    assert torch.isfinite(scores.topk(n, dim=1).values).all()  # n real candidates for every user
    return scores.topk(n, dim=1).indices.numpy()


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
    data = _tiny(n_items=60)  # 60 items: every user keeps >= 20 candidates after masking an 11-item history
    over = dict(max_eval_users=12, max_train_users=30)
    r = run_llm_experiment("llamarec", "synthetic", "smoke", 0, over, out=str(tmp_path), data=data)
    _check(r, tmp_path / r["run_id"], "llamarec")
    assert r["backbone"]["lora_params"] > 0
    # the retriever's top 20, recomputed here from its run folder, for the evaluated users
    split = data.split()
    users = eval_users(data.n_users, 12, 0)
    retriever_dir = json.loads((tmp_path / r["run_id"] / "config.json").read_text())["retriever_run"]
    top = _retriever_top(retriever_dir, data.n_items, [split.test_history[u] for u in users])
    target = split.test_target[users]
    # re-ranking permutes the 20 candidates: each list holds exactly the retriever's 20 items
    assert len(r["example_lists"]) == 3
    for ex in r["example_lists"]:
        row = top[list(users).index(ex["user"])]
        assert len(ex["list"]) == 20 and sorted(ex["list"]) == sorted(row.tolist())
    # so the LLM hits in its top 20 exactly where the retriever's top 20 holds the target (misses count as misses)
    in_top20 = np.mean([t in row for t, row in zip(target, top)])
    assert r["test"]["hr@20"] == pytest.approx(in_top20)
    assert r["retriever_test_recall@20"] == pytest.approx(in_top20)
    # the retriever-alone row is the retriever's own order of the same lists
    assert r["retriever_test"]["hr@10"] == pytest.approx(np.mean([t in row[:10] for t, row in zip(target, top)]))
    assert r["retriever_test"]["hr@20"] == pytest.approx(in_top20)
