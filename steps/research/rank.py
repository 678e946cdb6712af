"""Merge and rank: the join of the two searches, re-scored on one scale and cut to the top passages.

The sources score differently (fused ranks for the docs, BM25 for WordNet), so every hit is re-scored
by the MiniLM cosine between its text and the question or one of its sub-questions (the best of
them), plus ``TERM_BONUS`` when it holds a word the question asks to define: MiniLM barely knows rare
words ("idempotent" scores the asyncio passages that say "this method is idempotent" 0.34 against
0.45 for a page about the operator module). The best hit of each source that reaches ``min_each`` is
kept whatever the others score, so a question spanning both sources gets passages from both; below
it a source competes on score alone (a WordNet python snake scores 0.35 for "how do I write a closure
in Python"). The best hit of each source that reaches ``min_score`` is kept whatever the others score, so
a question that spans both sources gets passages from both.
"""

from __future__ import annotations

from steps.base import StepContext, StepModel
from steps.deps import Deps
from steps.registry import step
from steps.research.models import Hit, MissingSource, SourceResult
from steps.research.text import content_tokens

__all__ = ["TERM_BONUS", "MergeInput", "Merged", "ResearchMerge", "choose", "relevance"]

TERM_BONUS = 0.15


def relevance(cosine: float, text: str, defines: list[str]) -> float:
    """The cosine, plus :data:`TERM_BONUS` when ``text`` holds one of the words the question asks to define."""
    words = set(content_tokens(text))
    held = any(all(w in words for w in content_tokens(term)) and content_tokens(term) for term in defines)
    return round(cosine + (TERM_BONUS if held else 0.0), 4)


class MergeInput(StepModel):
    question: str
    subquestions: list[str] = []
    defines: list[str] = []
    branches: dict[str, dict] = {}
    missing: list[str] = []


class Merged(StepModel):
    top: list[Hit]
    searched: list[str]
    sources_missing: list[MissingSource]


def choose(hits: list[Hit], top_k: int, min_score: float, min_each: float = 0.45, per_origin: int = 3) -> list[Hit]:
    """The ``top_k`` best hits at or above ``min_score``, holding each origin's best one that reaches
    ``min_each`` and at most ``per_origin`` of one origin (while others have hits left); best first."""
    ranked = sorted((h for h in hits if h.score >= min_score), key=lambda h: -h.score)
    chosen: list[Hit] = []
    for origin in dict.fromkeys(h.origin for h in ranked):
        best = next(h for h in ranked if h.origin == origin)
        if best.score >= min_each:
            chosen.append(best)
    for capped in (True, False):  # a second pass fills what the cap left empty
        for h in ranked:
            if len(chosen) >= top_k:
                break
            if h not in chosen and (not capped or sum(c.origin == h.origin for c in chosen) < per_origin):
                chosen.append(h)
    return sorted(chosen[: max(top_k, len(chosen))], key=lambda h: -h.score)


@step("research-merge")
class ResearchMerge:
    """Joins the searches: what each source found, re-scored against the question, the best ``top_k`` kept."""

    def __init__(self, top_k: int = 5, min_score: float = 0.25, min_each: float = 0.45) -> None:
        self.top_k = top_k
        self.min_score = min_score
        self.min_each = min_each
        self._deps: Deps | None = None

    async def warm_up(self, deps: Deps) -> None:
        self._deps = deps

    async def run(self, input: MergeInput, ctx: StepContext) -> Merged:
        if self._deps is None:
            raise RuntimeError("ResearchMerge.warm_up() must run before run()")
        missing = [MissingSource(origin=label, reason="did not arrive before the join's timeout")
                   for label in input.missing]
        searched: list[str] = []
        seen: dict[tuple[str, str], Hit] = {}
        for label, branch in input.branches.items():
            result = SourceResult.model_validate(branch)
            if result.error is not None:
                missing.append(MissingSource(origin=result.origin, reason=result.error))
                continue
            searched.append(result.origin)
            for hit in result.hits:
                seen.setdefault((hit.source, hit.text), hit)
        hits = list(seen.values())
        if not hits:
            return Merged(top=[], searched=searched, sources_missing=missing)
        queries = [input.question, *input.subquestions]
        vectors = await self._deps.embedder.embed(queries + [h.text for h in hits])
        scores = (vectors[len(queries):] @ vectors[: len(queries)].T).max(axis=1)
        rescored = [h.model_copy(update={"score": relevance(float(s), h.text, input.defines)})
                    for h, s in zip(hits, scores, strict=True)]
        return Merged(top=choose(rescored, self.top_k, self.min_score, self.min_each), searched=searched, sources_missing=missing)
