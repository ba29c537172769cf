"""Sampled softmax with logQ correction: a training loss for large catalogues (issue 14, section 3).

Glossary (code <-> papers):
    h          (N, D)  hidden states at the scored positions (Jean et al.: the decoder state)
    E          (n_items + 1, D)  the item table, tied with the output layer: s_i = h . E_i (models/base.py)
    y          (N,)    the positive (target) item of each row
    S          (K,)    the sampled negatives, shared by the N rows of a batch (as TF's sampled_softmax_loss)
    Q(i)       the proposal: the probability that one draw yields item i
    K Q(i)     the expected count of i among K draws with replacement; log(K Q(i)) is "logQ"

Full softmax cross-entropy (the default, loss="ce"):
    l = -s_y + log Z,   Z = sum_{i=1..n} exp(s_i),   dl/dh = -E_y + sum_i p_i E_i,   p_i = exp(s_i) / Z
Z costs a (N, D) x (D, n) product; at 211k items (Amazon '23 Beauty) that is the whole cost of a step.

Sampled softmax (Bengio & Senecal 2008, "Adaptive importance sampling to accelerate training of a neural
probabilistic language model"; Jean et al. 2015, "On using very large target vocabulary for neural machine
translation"): split Z = exp(s_y) + sum_{i != y} exp(s_i) and estimate the second sum by importance sampling
with K draws S_1..S_K ~ Q (with replacement):
    sum_{i != y} exp(s_i)  ~=  sum_k [S_k != y] exp(s_{S_k}) / (K Q(S_k))
                           =   sum_k [S_k != y] exp(s_{S_k} - log(K Q(S_k)))
an unbiased estimate for every Q > 0 on the catalogue. So the loss is a (K + 1)-way cross-entropy over
    [ s_y ,  s_{S_1} - log(K Q(S_1)), ...,  s_{S_K} - log(K Q(S_K)) ]       with the positive in column 0
and "accidental hits" (S_k == y) masked to -inf: the positive enters Z exactly once, in its own column. Without
the -log(K Q) term (logQ correction) the estimate is biased towards the frequently drawn items: a popularity
proposal then over-penalises popular items. log Z is estimated consistently, not unbiasedly (Jensen), so the
gradient is biased for small K and converges to the full-softmax gradient as K grows. Exactness check: if S is
the whole catalogue drawn without replacement, every K Q(i) = 1, the correction is 0, the masked column removes
the duplicate positive, and the loss IS the full cross-entropy (tests/unit/test_losses.py).

Proposals (`sampler`):
    uniform     Q(i) = 1 / n                                              (Jean et al.)
    popularity  Q(i) = (c_i + 1) / sum_j (c_j + 1), c_i = item i's count in the training sequences; the + 1 keeps
                Q > 0 on every item, which the importance-sampling identity needs (an item never drawn would never
                be pushed down)
    in_batch    K draws uniformly among the batch's own targets y_1..y_N: in-batch negatives (Yi et al. 2019,
                "Sampling-bias-corrected neural modeling for large corpus item recommendations"). A batch's targets
                follow the target marginal p(i), so Q(i) = p(i); Yi et al. estimate p(i) with a streaming frequency
                sketch; here it is known exactly from the training sequences (c_i / sum_j c_j). Yi et al. subtract
                log p from every column of their in-batch softmax, the positive's included, because their positive is
                one of the batch columns; here the positive has its own uncorrected column (as above), so the
                whole-catalogue sample stays exact.
Data-parallel training (distributed.py): every rank seeds the same per-batch generator, so uniform and popularity
draws are the same K negatives on every rank and the ranks' sums add up to the single-process loss; in_batch draws
from a rank's own rows' targets (the same estimator, not bit-equal to the single-process loss).

The negatives' embeddings are gathered, E[S] (K, D), and only (N, K + 1) logits are formed, never (N, n_items).
Evaluation keeps the exact full ranking (evaluate.py): this changes the training loss only.
Randomness: draws come from the torch Generator the trainer passes per batch (seeded by seed, epoch and batch),
after the objective's own draws (cloze masks), so a resumed run repeats them.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .config import ConfigError
from .models.base import SequentialModel

SAMPLERS = ("uniform", "popularity", "in_batch")


def item_counts(train: Sequence[np.ndarray], n_items: int) -> np.ndarray:
    """(n_items + 1,) int64: how often each item occurs in the training sequences (index 0 = padding, 0)."""
    seqs = [np.asarray(s, dtype=np.int64) for s in train if len(s)]
    flat = np.concatenate(seqs) if seqs else np.zeros(0, np.int64)
    return np.bincount(flat, minlength=n_items + 1)[: n_items + 1]


def sampled_softmax_ce(h: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor, neg_ids: torch.Tensor,
                       neg_log_q: torch.Tensor | None, reduction: str = "mean") -> torch.Tensor:
    """The (K + 1)-way cross-entropy of the module docstring.

    h (N, D) hidden states; targets (N,) positives y; weight (n_rows, D) the item table E; neg_ids (K,) sampled
    negatives S (shared by the rows); neg_log_q (K,) log(K Q(S_k)), or None for no correction. -> a scalar
    (reduction "mean" over the N rows, or "sum")."""
    pos = torch.einsum("nd,nd->n", h, weight[targets])  # (N,)  s_y
    neg = h @ weight[neg_ids].t()  # (N, K)  s_{S_k}: the K gathered rows only
    if neg_log_q is not None:
        neg = neg - neg_log_q.to(neg.dtype)
    neg = neg.masked_fill(neg_ids[None, :] == targets[:, None], float("-inf"))  # accidental hits
    logits = torch.cat([pos[:, None], neg], dim=1).float()  # (N, K + 1), positive in column 0
    zeros = torch.zeros(len(targets), dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits, zeros, reduction=reduction)


class SampledSoftmax:
    """A training criterion: `crit(model, h (N, D), targets (N,), generator, reduction)` -> the sampled-softmax loss
    over `n_sampled` negatives drawn by `sampler` (module docstring). `log_q=False` drops the correction (for the
    tests that show what it is for; training always corrects). The objectives call it in place of the full CE."""

    def __init__(self, sampler: str, n_sampled: int, counts: np.ndarray, log_q: bool = True) -> None:
        if sampler not in SAMPLERS:
            raise ConfigError(f"TrainConfig.sampler: unknown sampler {sampler!r}; valid: {list(SAMPLERS)}")
        if n_sampled < 1:
            raise ConfigError(f"TrainConfig.n_sampled must be >= 1, got {n_sampled}")
        self.sampler, self.k, self.correct = sampler, int(n_sampled), bool(log_q)
        counts = torch.as_tensor(np.asarray(counts, dtype=np.float64))
        self.n_items = len(counts) - 1
        if sampler == "popularity":
            q = counts[1:] + 1.0
        elif sampler == "in_batch":
            q = counts[1:].clone()  # the target marginal p(i); in-batch draws only ever yield items with c_i > 0
        else:
            q = torch.ones(self.n_items, dtype=torch.float64)
        self.q = torch.cat([torch.zeros(1, dtype=torch.float64), q / q.sum()])  # (n_items + 1,) Q(i); Q(0) = 0

    def draw(self, targets: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """-> (K,) int64 negatives on the CPU (draws from `generator`, device-independent)."""
        if self.sampler == "uniform":
            return torch.randint(1, self.n_items + 1, (self.k,), generator=generator)
        if self.sampler == "popularity":
            return torch.multinomial(self.q[1:].float(), self.k, replacement=True, generator=generator) + 1
        pick = torch.randint(0, len(targets), (self.k,), generator=generator)  # in_batch: K of the batch's targets
        return targets.detach().cpu()[pick]

    def log_expected_count(self, ids: torch.Tensor) -> torch.Tensor:
        """(K,) log(K Q(i)) of the drawn ids: the logQ correction of each sampled column."""
        return torch.log(self.k * self.q[ids]).float()

    def __call__(self, model, h: torch.Tensor, targets: torch.Tensor, generator: torch.Generator | None = None,
                 reduction: str = "mean") -> torch.Tensor:
        if type(model).score is not SequentialModel.score:
            raise ConfigError(f"{getattr(model, 'name', model)} has no tied item table; loss=sampled_softmax "
                              "needs scores s_i = h . E_i (models/base.py)")
        ids = self.draw(targets, generator)
        log_q = self.log_expected_count(ids).to(h.device) if self.correct else None
        return sampled_softmax_ce(h, targets, model.item_emb.weight, ids.to(h.device), log_q, reduction)
