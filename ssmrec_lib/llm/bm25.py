"""BM25 over item titles with the `bm25s` library (Lucene BM25, k1 = 1.5, b = 0.75 by default).

score(q, d) = sum over query terms w of IDF(w) * tf(w, d) (k1 + 1) / (tf(w, d) + k1 (1 - b + b |d| / avgdl))
Tokens: lower-cased `\\w+` runs (digits and one-letter words kept, so "item 7" and years like "1995" match;
bm25s' default tokenizer would drop one-character tokens). Documents are items 1..n_items; id 0 is padding.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

_WORD = re.compile(r"\w+", re.UNICODE)


def tokenize(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class TitleIndex:
    """BM25 index of titles[1..n]; `search(query, k)` -> (item ids (k',), scores (k',)), best first, score > 0."""

    def __init__(self, titles: Sequence[str]) -> None:
        import bm25s

        self.n_items = len(titles) - 1
        docs = [tokenize(t) or ["<empty>"] for t in titles[1:]]
        self.retriever = bm25s.BM25()
        self.retriever.index(docs, show_progress=False)

    def search_many(self, queries: Sequence[str], k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Queries (Q,) -> Q pairs (item ids, scores), each at most k long, only positive scores."""
        toks = [tokenize(q) or ["<empty>"] for q in queries]
        k = min(k, self.n_items)
        docs, scores = self.retriever.retrieve(toks, k=k, show_progress=False, n_threads=1)  # (Q, k) each
        out = []
        for d, s in zip(np.asarray(docs), np.asarray(scores)):
            keep = s > 0
            out.append((d[keep].astype(np.int64) + 1, s[keep].astype(np.float64)))
        return out

    def search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.search_many([query], k)[0]
