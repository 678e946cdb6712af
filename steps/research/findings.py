"""Key findings: the map over the top passages (``research-extract``) and its join (``research-collect``).

Each branch keeps the sentences of one passage closest to the question or a sub-question (MiniLM
cosine, plus the bonus of :func:`steps.research.rank.relevance` for a sentence holding a word the
question asks to define), in the passage's own order, so the synthesis chooses among a handful of sentences rather
than whole pages.
"""

from __future__ import annotations

import re

import numpy as np

from steps.base import StepContext, StepModel
from steps.deps import Deps
from steps.providers import clean_markup, split_sentences
from steps.registry import step
from steps.research.models import Finding, Hit
from steps.research.rank import relevance
from steps.research.text import sentences

_CODE = re.compile(r"^(import|from)\s+\w|\bimport\s+\w+.*\bimport\b")  # code that markup cleaning left in

__all__ = ["Collected", "ExtractInput", "Extracted", "ResearchExtract", "candidate_sentences", "research_collect"]


class ExtractInput(StepModel):
    question: str
    subquestions: list[str] = []
    defines: list[str] = []
    item: Hit
    index: int


class Extracted(StepModel):
    finding: Finding


class CollectInput(StepModel):
    items: list[dict] = []
    missing: list[int] = []


class Collected(StepModel):
    findings: list[Finding]


def candidate_sentences(text: str) -> list[str]:
    """A passage's prose sentences (markup, code and fragments left out; plain text split as is)."""
    found = split_sentences(text) or [s for s in sentences(clean_markup(text)) if 12 <= len(s) <= 400]
    return [s for s in found if not _CODE.search(s) and _prose(s)]


def _prose(sentence: str) -> bool:
    """Mostly letters and spaces: leaves out interpreter sessions and dumped data structures."""
    letters = sum(ch.isalpha() or ch == " " for ch in sentence)
    return ">>>" not in sentence and letters / max(len(sentence), 1) >= 0.85


@step("research-extract")
class ResearchExtract:
    """One passage's key sentences: the ``per_passage`` closest to the question, at or above ``min_score``."""

    def __init__(self, per_passage: int = 2, min_score: float = 0.2) -> None:
        self.per_passage = per_passage
        self.min_score = min_score
        self._deps: Deps | None = None

    async def warm_up(self, deps: Deps) -> None:
        self._deps = deps

    async def run(self, input: ExtractInput, ctx: StepContext) -> Extracted:
        if self._deps is None:
            raise RuntimeError("ResearchExtract.warm_up() must run before run()")
        hit = input.item
        candidates = candidate_sentences(hit.text)
        chosen: list[int] = []
        scores = np.zeros(0, dtype=np.float32)
        if candidates:
            queries = [input.question, *input.subquestions]
            vectors = await self._deps.embedder.embed(queries + candidates)
            cosines = (vectors[len(queries):] @ vectors[: len(queries)].T).max(axis=1)
            scores = np.array([relevance(float(c), s, input.defines) for c, s in zip(cosines, candidates, strict=True)])
            best = [int(i) for i in np.argsort(-scores, kind="stable") if scores[i] >= self.min_score]
            chosen = sorted(best[: self.per_passage])
        return Extracted(finding=Finding(
            rank=input.index, source=hit.source, title=hit.title, origin=hit.origin, text=hit.text, score=hit.score,
            sentences=[candidates[i] for i in chosen], sentence_scores=[round(float(scores[i]), 4) for i in chosen],
        ))


@step("research-collect")
async def research_collect(input: CollectInput, ctx: StepContext) -> Collected:
    """Joins the map: the findings that kept a sentence, best passage first."""
    findings = [Extracted.model_validate(item).finding for item in input.items]
    return Collected(findings=sorted((f for f in findings if f.sentences), key=lambda f: f.rank))
