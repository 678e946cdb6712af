"""BM25 over a list of texts (Okapi, k1 = 1.5, b = 0.75), as a sparse matrix: one column per term.

Build cost is one pass of :func:`steps.research.text.content_tokens` over the texts (about 2 s for
WordNet's 117,659 glosses on this machine); a query sums the columns of its terms. Blocking: call
``build`` and ``search`` off the event loop.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from steps.research.text import content_tokens

__all__ = ["BM25Index", "top"]


class BM25Index:
    """Okapi BM25 scores of every text for a bag of query terms."""

    def __init__(self, texts: list[str], k1: float = 1.5, b: float = 0.75) -> None:
        from scipy import sparse

        vocab: dict[str, int] = {}
        rows: list[int] = []
        cols: list[int] = []
        tfs: list[float] = []
        lengths = np.zeros(len(texts), dtype=np.float32)
        for i, text in enumerate(texts):
            counts = Counter(content_tokens(text))
            lengths[i] = sum(counts.values())
            for term, tf in counts.items():
                rows.append(i)
                cols.append(vocab.setdefault(term, len(vocab)))
                tfs.append(tf)
        self.vocab = vocab
        self.size = len(texts)
        tf = np.asarray(tfs, dtype=np.float32)
        row = np.asarray(rows, dtype=np.int64)
        col = np.asarray(cols, dtype=np.int64)
        df = np.bincount(col, minlength=len(vocab)).astype(np.float32)
        idf = np.log(1.0 + (self.size - df + 0.5) / (df + 0.5))
        avg = float(lengths.mean()) if self.size else 1.0
        norm = k1 * (1.0 - b + b * lengths[row] / max(avg, 1e-9))
        weights = idf[col] * tf * (k1 + 1.0) / (tf + norm)
        self.matrix = sparse.csc_matrix((weights, (row, col)), shape=(self.size, max(len(vocab), 1)), dtype=np.float32)

    def __len__(self) -> int:
        return self.size

    def scores(self, query: str) -> np.ndarray:
        """The BM25 score of every text for the content terms of ``query`` (zeros when none is known)."""
        terms = sorted({self.vocab[t] for t in content_tokens(query) if t in self.vocab})
        if not terms:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self.matrix[:, terms].sum(axis=1), dtype=np.float32).ravel()

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """The ``k`` best (text index, score) pairs with a score above zero, best first."""
        return top(self.scores(query), k)


def top(scores: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The ``k`` highest positive entries of ``scores`` as (index, score), best first."""
    if k <= 0 or not len(scores):
        return []
    k = min(k, len(scores))
    best = np.argpartition(-scores, k - 1)[:k]
    best = best[np.argsort(-scores[best], kind="stable")]
    return [(int(i), float(scores[i])) for i in best if scores[i] > 0 and math.isfinite(float(scores[i]))]
