"""The two searches the research pipeline runs in parallel, and the stand-in for a source that failed.

- ``docs-search``: the Python-docs vector index (``deps.index()``), dense MiniLM cosine fused with BM25
  over the same passages by reciprocal rank, because MiniLM barely knows rare words such as
  "idempotent" (dense alone ranks no passage holding it in the top 5 of the real index).
- ``wordnet-search``: BM25 over WordNet glosses (:mod:`steps.research.wordnet`), the asked words' own
  senses first. Raises :class:`~steps.research.wordnet.WordNetMissingError` (fatal) without
  ``wordnet-base``.
- ``source-unavailable``: the ``fallback:`` of a search node, so a failed source arrives at the join
  as an empty branch that says so, and the answer comes from the other source.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from steps.base import StepContext, StepModel
from steps.deps import Deps
from steps.registry import step
from steps.research.bm25 import BM25Index, top
from steps.research.models import Hit, SourceResult
from steps.research.wordnet import WORDNET_DIR, WordNetMissingError, load_wordnet

if TYPE_CHECKING:
    from steps.index import VectorIndex

__all__ = ["DocsSearch", "SearchInput", "SourceUnavailable", "WordNetSearch", "fuse"]

log = logging.getLogger(__name__)
RRF_K = 60  # the usual reciprocal-rank-fusion constant


class SearchInput(StepModel):
    question: str
    terms: list[str] = []
    defines: list[str] = []


def fuse(rankings: list[list[int]], k: int) -> list[tuple[int, float]]:
    """Reciprocal rank fusion of several rankings of the same items: the ``k`` best (item, score)."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking):
            scores[item] = scores.get(item, 0.0) + 1.0 / (RRF_K + rank + 1)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]


@step("docs-search")
class DocsSearch:
    """Hybrid search of the Python-docs index: dense cosine and BM25, fused by reciprocal rank."""

    def __init__(self, top_k: int = 5, candidates: int = 20) -> None:
        self.top_k = top_k
        self.candidates = candidates
        self._deps: Deps | None = None
        self._bm25: tuple[VectorIndex, BM25Index] | None = None

    async def warm_up(self, deps: Deps) -> None:
        self._deps = deps
        await self._lexical(await deps.index())

    async def _lexical(self, index: VectorIndex) -> BM25Index:
        if self._bm25 is None or self._bm25[0] is not index:
            texts = [f"{p.title} {p.text}" for p in index.passages]
            self._bm25 = (index, await asyncio.to_thread(BM25Index, texts))
        return self._bm25[1]

    async def run(self, input: SearchInput, ctx: StepContext) -> SourceResult:
        if self._deps is None:
            raise RuntimeError("DocsSearch.warm_up() must run before run()")
        index = await self._deps.index()
        started = time.time()
        query = (await self._deps.embedder.embed([input.question]))[0]
        dense = await self._deps.embedder.run_sync(lambda: top(index.vectors @ query, self.candidates))
        dense_ids = [i for i, _ in dense]
        middle = time.time()
        ctx.record_span("docs.dense", started, middle, kind="tool", hits=len(dense_ids))
        bm25 = await self._lexical(index)
        lexical = [i for i, _ in await asyncio.to_thread(bm25.search, " ".join([input.question, *input.defines]),
                                                         self.candidates)]
        ctx.record_span("docs.bm25", middle, time.time(), kind="tool", hits=len(lexical))
        hits = []
        for i, score in fuse([dense_ids, lexical], self.top_k):
            p = index.passages[i]
            hits.append(Hit(source=p.source, title=p.title, text=p.text, score=round(score, 5), origin="docs"))
        return SourceResult(origin="docs", hits=hits)


@step("wordnet-search")
class WordNetSearch:
    """WordNet senses for the question: the asked words' own senses first, then BM25 over the glosses."""

    def __init__(self, root: str = str(WORDNET_DIR), top_k: int = 4) -> None:
        self.root = Path(root)
        self.top_k = top_k

    async def warm_up(self, deps: Deps) -> None:
        try:
            await asyncio.to_thread(load_wordnet, self.root)  # about 2 s, once per process
        except WordNetMissingError as exc:
            log.warning("wordnet-search will fail and its fallback answer: %s", exc)

    async def run(self, input: SearchInput, ctx: StepContext) -> SourceResult:
        started = time.time()
        index = await asyncio.to_thread(load_wordnet, self.root)
        query = " ".join([input.question, *input.defines])
        found = await asyncio.to_thread(index.search, query, input.defines, self.top_k)
        ctx.record_span("wordnet.bm25", started, time.time(), kind="tool", hits=len(found), synsets=len(index))
        hits = [Hit(source=s.source, title=s.title, text=s.passage(), score=round(score, 4), origin="wordnet")
                for s, score in found]
        return SourceResult(origin="wordnet", hits=hits)


class Anything(StepModel):
    """The fallback reads nothing: it stands in for the branch whatever its input."""


@step("source-unavailable")
class SourceUnavailable:
    """The fallback of a search node: an empty result for ``source`` that says the search failed."""

    def __init__(self, source: str) -> None:
        self.source = source

    async def run(self, input: Anything, ctx: StepContext) -> SourceResult:
        return SourceResult(origin=self.source, error=f"the {self.source} search failed (its span on "
                                                      "conveyor.traces has the error); answered from the other sources")
