"""Text prompts built from item titles.

GPT4Rec prompt (history -> next title), most recent title last, at most `max_items` titles:
    "[BOS] title_1 [SEP] title_2 [SEP] ... title_n [SEP]"          target: " title_next [EOS]"
LlamaRec ranking prompt (history + 20 candidates labelled A..T), answer = the target's letter:
    "[BOS] history : t_1 [SEP] ... t_n [SEP] candidates : A title_a [SEP] B ... [SEP] answer :"   target " C"
Titles are cut to `max_title_words` words so long titles do not crowd the history out.
Training examples come from the TRAINING split only (Split.train = sequence[:-2]): the valid and test targets
are never a fine-tuning target.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .backbones import LETTERS


def short_title(title: str, max_words: int = 12) -> str:
    return " ".join(title.split()[:max_words])


def history_prompt(history: Sequence[int], titles: Sequence[str], max_items: int = 10, max_title_words: int = 12,
                   bos: str = "[BOS]", sep: str = "[SEP]") -> str:
    """history (n,) item ids, oldest first -> prompt text with the last `max_items` titles, newest last."""
    recent = [short_title(titles[int(i)], max_title_words) for i in list(history)[-max_items:]]
    return f"{bos} " + "".join(f"{t} {sep} " for t in recent).rstrip()


def ranking_prompt(history: Sequence[int], candidates: Sequence[int], titles: Sequence[str], max_items: int = 10,
                   max_title_words: int = 8, bos: str = "[BOS]", sep: str = "[SEP]") -> str:
    """history (n,), candidates (C <= 20,) item ids -> LlamaRec prompt ending at the answer position."""
    hist = "".join(f"{short_title(titles[int(i)], max_title_words)} {sep} " for i in list(history)[-max_items:])
    cands = "".join(f"{LETTERS[j]} {short_title(titles[int(c)], max_title_words)} {sep} "
                    for j, c in enumerate(candidates))
    return f"{bos} history : {hist}candidates : {cands}answer :"


def next_title_examples(train: Sequence[np.ndarray], titles: Sequence[str], per_user: int = 4, max_items: int = 10,
                        max_title_words: int = 12, seed: int = 0, eos: str = "[EOS]", bos: str = "[BOS]",
                        sep: str = "[SEP]") -> list[tuple[str, str]]:
    """(prompt, target text) pairs from training sequences: for each user, the last position and up to
    `per_user - 1` random earlier positions t >= 1 (history s[:t] -> target s[t]); all ids come from `train`."""
    rng = np.random.default_rng(seed)
    out = []
    for s in train:
        if len(s) < 2:
            continue
        ts = {len(s) - 1}
        if per_user > 1 and len(s) > 2:
            ts |= set(rng.choice(np.arange(1, len(s) - 1), size=min(per_user - 1, len(s) - 2), replace=False).tolist())
        for t in sorted(ts):
            out.append((history_prompt(s[:t], titles, max_items, max_title_words, bos, sep),
                        f" {short_title(titles[int(s[t])], max_title_words)} {eos}"))
    return out
