"""Retrieval: the passages of the knowledge base closest to the question, by dense vectors and BM25 fused.

``mode="hybrid"`` (the default) ranks the index's passages twice, by MiniLM cosine and by BM25 over
their words (:mod:`steps.lexical`), after correcting misspelt words against the corpus vocabulary,
and fuses the two rankings by reciprocal rank fusion (RRF: each passage scores
``sum(weight / (rrf_k + rank))`` over the rankings it appears in). RRF needs no score calibration
between cosine and BM25, which live on different scales. ``mode="dense"`` is the vector search
alone, as before hybrid retrieval (kept to measure against and for corpora where words mislead).

A returned passage's ``score`` is still its cosine similarity to the (corrected) question, so
consumers that threshold on it keep working; ``min_score`` drops passages below it. The order is
the fused order. Measured on ``tests/data/eval/retrieval_*.jsonl`` (``conveyor eval retrieval``).
"""

from __future__ import annotations

import asyncio
from typing import Literal

import numpy as np

from steps.base import StepContext, StepModel
from steps.deps import Deps
from steps.lexical import LexicalIndex, lexical_index
from steps.registry import step

__all__ = [
    "Retrieval", "RetrievalInput", "RetrievalNotWarmError", "RetrievalOutput", "RetrievedPassage", "best", "fuse",
]


class RetrievalNotWarmError(RuntimeError):
    """The step ran before ``warm_up(deps)``: the worker (or ``resolve(...).build``) warms steps; call it first."""


class RetrievedPassage(StepModel):
    source: str
    title: str
    text: str
    score: float


class RetrievalInput(StepModel):
    text: str


class RetrievalOutput(StepModel):
    passages: list[RetrievedPassage]
    index_size: int
    query: str | None = None  # the question as searched, when spelling correction changed it


def fuse(rankings: list[list[int]], k: float, weights: list[float] | None = None) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: every id with ``sum(weight / (k + rank))`` (rank from 1), best first, ties by id."""
    weights = weights if weights is not None else [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError(f"{len(weights)} weights for {len(rankings)} rankings: give one weight per ranking")
    scores: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights):
        for rank, item in enumerate(ranking, 1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))


def best(scores: np.ndarray, k: int) -> list[int]:
    """Positions of the ``k`` highest ``scores``, best first (argpartition: linear in the index, no full sort)."""
    k = min(k, len(scores))
    if k <= 0:
        return []
    chosen = np.argpartition(-scores, k - 1)[:k]
    return [int(i) for i in chosen[np.argsort(-scores[chosen], kind="stable")]]


@step("retrieval")
class Retrieval:
    """Top-k passages of the index built by ``conveyor index`` (or the default corpus), hybrid or dense."""

    def __init__(
        self,
        top_k: int = 4,
        min_score: float = 0.2,
        mode: Literal["hybrid", "dense"] = "hybrid",
        candidates: int = 50,
        rrf_k: float = 60.0,
        lexical_weight: float = 1.0,
        correct_spelling: bool = True,
    ) -> None:
        if mode not in ("hybrid", "dense"):
            raise ValueError(f"retrieval mode {mode!r} is unknown: use 'hybrid' or 'dense'")
        self.top_k = top_k
        self.min_score = min_score
        self.mode = mode
        self.candidates = max(candidates, top_k)
        self.rrf_k = rrf_k
        self.lexical_weight = lexical_weight
        self.correct_spelling = correct_spelling
        self._deps: Deps | None = None

    async def warm_up(self, deps: Deps) -> None:
        self._deps = deps
        index = await deps.index()
        if self.mode == "hybrid":
            await asyncio.to_thread(lexical_index, index)  # BM25 and the speller, built once per index

    async def run(self, input: RetrievalInput, ctx: StepContext) -> RetrievalOutput:
        if self._deps is None:
            raise RetrievalNotWarmError("Retrieval.warm_up(deps) must run before run()")
        index = await self._deps.index()
        if not len(index):
            return RetrievalOutput(passages=[], index_size=0)
        query = input.text
        lexical: list[int] = []
        if self.mode == "hybrid":
            lex = await asyncio.to_thread(lexical_index, index)  # cached: a dictionary lookup after warm_up
            query, lexical = await asyncio.to_thread(self._lexical, lex, input.text)
        vector = (await self._deps.embedder.embed([query]))[0]
        cosine: np.ndarray = await self._deps.embedder.run_sync(np.matmul, index.vectors, vector.astype(np.float32))
        dense = best(cosine, self.candidates)
        order = [i for i, _ in fuse([dense, lexical], self.rrf_k, [1.0, self.lexical_weight])] if lexical else dense
        passages = []
        for i in order:
            if float(cosine[i]) < self.min_score:
                continue
            p = index.passages[i]
            score = round(float(cosine[i]), 4)
            passages.append(RetrievedPassage(source=p.source, title=p.title, text=p.text, score=score))
            if len(passages) == self.top_k:
                break
        return RetrievalOutput(passages=passages, index_size=len(index), query=query if query != input.text else None)

    def _lexical(self, lex: LexicalIndex, text: str) -> tuple[str, list[int]]:
        """(the corrected question, its BM25 ranking of passage positions): blocking, run off the loop."""
        query = lex.speller.correct(text)[0] if self.correct_spelling else text
        return query, [i for i, _ in lex.search(query, self.candidates)]
