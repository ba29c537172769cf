"""LLM recommenders, the model side: backbones, beam-search queries, verbalizer, misses, LoRA. No network."""

import socket

import numpy as np
import pytest
import torch

from ssmrec_lib.errors import UserError
from ssmrec_lib.llm.backbones import LETTERS, letter_token_ids, load_backbone
from ssmrec_lib.llm.gpt4rec import GPT4Rec, GPT4RecConfig
from ssmrec_lib.llm.llamarec import add_lora, lora_targets_for, rank_by_scores, verbalizer_scores
from ssmrec_lib.llm.ranking import list_ranks, metrics_from_ranks

TITLES = [""] + [f"item {i}" for i in range(1, 41)]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")

    def refuse(*a, **k):
        raise AssertionError("a test tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.mark.parametrize("arch", ["gpt2-tiny", "mamba-tiny", "llama-tiny"])
def test_tiny_backbones_are_labelled_not_pretrained(arch):
    bb = load_backbone(arch, TITLES[1:], d_model=32, n_layers=1)
    info = bb.info()
    assert info["pretrained"] is False and info["name"] == arch
    assert info["n_params"] == sum(p.numel() for p in bb.model.parameters()) and "word-level" in info["tokenizer"]


def test_word_tokenizer_keeps_words_whole_with_letters():
    bb = load_backbone("llama-tiny", ["Apollo 13 (1995)", "Babe (1995)"], extra_tokens=LETTERS, d_model=32, n_layers=1)
    assert bb.tokenizer.tokenize("Apollo 13 Babe A T") == ["Apollo", "13", "Babe", "A", "T"]
    assert len(set(letter_token_ids(bb.tokenizer))) == 20


def test_hub_name_offline_raises_user_error():
    with pytest.raises(UserError, match="gpt2-tiny"):
        load_backbone("gpt2")


@pytest.mark.parametrize("arch", ["gpt2-tiny", "mamba-tiny"])
def test_beam_search_returns_k_distinct_queries(arch):
    torch.manual_seed(0)
    k = 4
    rec = GPT4Rec(GPT4RecConfig(backbone=arch, d_model=32, n_layers=1, n_queries=k, max_new_tokens=4), TITLES)
    queries = rec.generate_queries(np.array([1, 2, 3]))
    assert len(queries) == k and len(set(queries)) == k
    ranked = rec.recommend(np.array([1, 2, 3]))
    assert len(ranked) == len(set(ranked)) <= rec.cfg.top_k and all(1 <= i <= 40 for i in ranked)


def test_verbalizer_picks_highest_letter_logit_and_maps_back():
    bb = load_backbone("llama-tiny", TITLES[1:], extra_tokens=LETTERS, d_model=32, n_layers=1)
    letters = letter_token_ids(bb.tokenizer)
    assert len(set(letters)) == 20
    V = len(bb.tokenizer)
    logits = torch.zeros(2, V)
    logits[0, letters[3]] = 5.0  # user 0: D is best, then A
    logits[0, letters[0]] = 2.0
    logits[1, letters[19]] = 1.0  # user 1: T is best
    logits[:, 0] = 100.0  # a non-letter token with a huge logit must not matter
    cands = np.arange(1, 41).reshape(2, 20)
    s = verbalizer_scores(logits, letters, 20)
    assert s.shape == (2, 20)
    ranked = rank_by_scores(s, cands)
    assert ranked[0][:2] == [cands[0, 3], cands[0, 0]] and ranked[1][0] == cands[1, 19]
    assert sorted(ranked[0]) == sorted(cands[0].tolist())  # a permutation of the candidates


def test_retriever_misses_count_as_misses():
    cands = np.array([[5, 6, 7], [8, 9, 10]])
    s = torch.tensor([[0.1, 0.9, 0.5], [1.0, 2.0, 3.0]])
    lists = rank_by_scores(s, cands)
    m = metrics_from_ranks(list_ranks(lists, [6, 99]))  # user 1's target 99 was not retrieved
    assert m["hr@5"] == pytest.approx(0.5) and m["ndcg@20"] == pytest.approx(0.5) and m["miss_rate"] == 0.5


def test_lora_trains_only_adapters():
    bb = load_backbone("llama-tiny", TITLES[1:], extra_tokens=LETTERS, d_model=32, n_layers=1)
    base = {n: p.detach().clone() for n, p in bb.model.named_parameters()}
    model = add_lora(bb.model, r=4, alpha=8, dropout=0.0, targets=lora_targets_for(bb.model))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    ids = torch.tensor([[2, 5, 6, 7, 8]])
    model(input_ids=ids, labels=ids).loss.backward()
    for n, p in model.named_parameters():
        assert (p.grad is not None) == ("lora_" in n), n
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    opt.step()
    merged = {n.replace("base_model.model.", "").replace(".base_layer", ""): p for n, p in model.named_parameters()
              if "lora_" not in n}
    for n, p in base.items():
        assert torch.equal(merged[n], p), n  # base weights unchanged after a step
