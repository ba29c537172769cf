"""`bench latency` with LLM models: whole-pipeline batch-1 rows of their own in the same CSV and printout."""

import socket

import pandas as pd
import pytest

from ssmrec_lib.cli import main


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*a, **k):
        raise AssertionError("a test tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_bench_latency_accepts_llm_models_and_writes_their_rows(tmp_path, capsys):
    out = tmp_path / "latency.csv"
    rc = main(["bench", "latency", "--models", "sasrec", "gpt4rec", "llamarec", "--lengths", "8,16", "--batch", "1,4",
               "--repeats", "2", "--device", "cpu", "--llm-profile", "smoke", "--out", str(out)])
    assert rc == 0
    df = pd.read_csv(out)
    seq, llm = df[df["pipeline"].isna()], df[df["pipeline"].notna()]
    assert set(seq["model"]) == {"sasrec"} and len(seq) == 4  # 2 batches x 2 lengths
    assert set(llm["model"]) == {"gpt4rec", "llamarec"}
    assert len(llm) == 4 and (llm["batch"] == 1).all() and set(llm["length"]) == {8, 16}
    assert (llm["status"] == "ok").all() and (llm["latency_ms_median"] > 0).all()
    assert (llm["latency_ms_p95"] >= llm["latency_ms_median"]).all()
    assert llm["backbone"].str.contains("NOT pretrained").all()
    assert (llm["params_wo_emb"] < llm["params"]).all() and (llm["params"] > 0).all()
    # LlamaRec's parameters count its LRURec retriever too: more than its own backbone label says
    lr = llm[llm["model"] == "llamarec"].iloc[0]
    assert lr["params"] > int(lr["backbone"].split("(")[1].split(" params")[0].replace(",", ""))
    printed = capsys.readouterr().out
    assert "LLM recommenders: the whole pipeline per user at batch 1" in printed and "BM25" in printed
