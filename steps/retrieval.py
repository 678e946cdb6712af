"""Retrieval: the passages of the knowledge base closest to the question (dense MiniLM vectors)."""

from __future__ import annotations

from steps.base import StepContext, StepModel
from steps.deps import Deps
from steps.registry import step

__all__ = ["Retrieval", "RetrievalInput", "RetrievalOutput", "RetrievedPassage"]


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


@step("retrieval")
class Retrieval:
    """Top-k exact cosine search over the index built by ``conveyor index`` (or the default corpus)."""

    def __init__(self, top_k: int = 4, min_score: float = 0.2) -> None:
        self.top_k = top_k
        self.min_score = min_score
        self._deps: Deps | None = None

    async def warm_up(self, deps: Deps) -> None:
        self._deps = deps
        await deps.index()

    async def run(self, input: RetrievalInput, ctx: StepContext) -> RetrievalOutput:
        if self._deps is None:
            raise RuntimeError("Retrieval.warm_up() must run before run()")
        index = await self._deps.index()
        query = (await self._deps.embedder.embed([input.text]))[0]
        hits = [h for h in await self._deps.embedder.run_sync(index.search, query, self.top_k) if h.score >= self.min_score]
        passages = [
            RetrievedPassage(source=h.source, title=h.title, text=h.text, score=round(h.score, 4)) for h in hits
        ]
        return RetrievalOutput(passages=passages, index_size=len(index))
