"""LLM recommenders, the text side: prompts, BM25 retrieval, the merge rule and metrics from ranked lists."""

import math

import numpy as np
import pytest

from ssmrec_lib.llm.bm25 import TitleIndex
from ssmrec_lib.llm.prompts import history_prompt, next_title_examples, ranking_prompt
from ssmrec_lib.llm.ranking import list_ranks, merge_round_robin, merge_score_sum, metrics_from_ranks

TITLES = ["", "Toy Story (1995)", "Jumanji (1995)", "Heat (1995)", "Grumpier Old Men (1995)", "Toy Soldiers (1991)",
          "Sabrina (1995)"]


def test_history_prompt_most_recent_last_and_truncated():
    p = history_prompt([1, 2, 3, 4], TITLES, max_items=2)
    assert p == "[BOS] Heat (1995) [SEP] Grumpier Old Men (1995) [SEP]"
    assert "Toy Story" not in p  # the oldest items are cut first


def test_ranking_prompt_labels_candidates_in_order():
    p = ranking_prompt([1], [3, 5, 2], TITLES)
    assert p.index("A Heat") < p.index("B Toy Soldiers") < p.index("C Jumanji")
    assert p.endswith("answer :")


def test_next_title_examples_use_training_sequences_only():
    train = [np.array([1, 2, 3]), np.array([4, 5])]
    pairs = next_title_examples(train, TITLES, per_user=5, max_items=10)
    targets = {t.replace(" [EOS]", "").strip() for _, t in pairs}
    assert targets <= {TITLES[i] for i in (2, 3, 5)}  # only items at positions >= 1 of the training sequences
    assert (history_prompt([1, 2], TITLES), " Heat (1995) [EOS]") in pairs  # the last position is always used
    assert TITLES[6] not in " ".join(p + t for p, t in pairs)  # an item outside `train` never appears


def test_bm25_finds_exact_title_first():
    idx = TitleIndex(TITLES)
    for i in range(1, len(TITLES)):
        ids, scores = idx.search(TITLES[i], k=3)
        assert ids[0] == i and scores[0] > 0
    ids, _ = idx.search("toy", k=5)
    assert set(ids.tolist()) == {1, 5}  # only titles sharing a word, score > 0


def test_bm25_keeps_digits_for_synthetic_titles():
    titles = [""] + [f"item {i}" for i in range(1, 30)]
    ids, _ = TitleIndex(titles).search("item 7", k=3)
    assert ids[0] == 7


def test_merge_round_robin_hand_example():
    results = [[10, 11, 12], [11, 20], [30, 10, 31]]
    # round 1: 10, 11, 30; round 2: (11 taken), 20, (10 taken); round 3: 12, 31
    assert merge_round_robin(results, top_k=10) == [10, 11, 30, 20, 12, 31]
    assert merge_round_robin(results, top_k=4) == [10, 11, 30, 20]
    assert merge_round_robin(results, top_k=10, exclude=[11]) == [10, 30, 20, 12, 31]


def test_merge_score_sum_hand_example():
    results = [([1, 2], [3.0, 1.0]), ([2, 3], [2.5, 0.5])]
    assert merge_score_sum(results, top_k=3) == [2, 1, 3]  # 2: 3.5, 1: 3.0, 3: 0.5


def test_metrics_from_ranked_lists_with_misses():
    lists = [[5, 6, 7], [7, 5], [1, 2]]
    ranks = list_ranks(lists, [5, 5, 9])
    assert ranks.tolist() == [1, 2, 0]
    m = metrics_from_ranks(ranks)
    assert m["n_users"] == 3 and m["miss_rate"] == pytest.approx(1 / 3)
    assert m["hr@5"] == pytest.approx(2 / 3)
    assert m["ndcg@5"] == pytest.approx((1 + 1 / math.log2(3)) / 3)
    assert m["mrr@20"] == pytest.approx((1 + 0.5) / 3)
    assert metrics_from_ranks(np.array([0, 0]))["hr@20"] == 0.0  # a short list never earns a miss credit
