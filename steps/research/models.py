"""The records the research steps pass along: hits, ranked hits, findings, numbered sources, fact-check verdicts."""

from __future__ import annotations

from steps.base import StepModel

__all__ = ["CheckedSentence", "FactCheck", "Finding", "Hit", "MissingSource", "NumberedSource", "SourceResult"]


class Hit(StepModel):
    """One passage a source returned; ``origin`` names the source (``docs``, ``wordnet``)."""

    source: str
    title: str
    text: str
    score: float
    origin: str


class SourceResult(StepModel):
    """What one search branch brings to the join: its hits, or why it has none."""

    origin: str
    hits: list[Hit] = []
    error: str | None = None


class MissingSource(StepModel):
    origin: str
    reason: str


class Finding(StepModel):
    """The key sentences of one top-ranked passage (``rank`` 0 is the best passage)."""

    rank: int
    source: str
    title: str
    origin: str
    text: str
    score: float
    sentences: list[str]
    sentence_scores: list[float]


class NumberedSource(StepModel):
    """Source ``[n]`` of the answer, with the passage the fact-check reads."""

    n: int
    source: str
    title: str
    origin: str
    score: float
    text: str


class CheckedSentence(StepModel):
    sentence: str
    n: int | None
    source: str | None
    score: float
    supported: bool
    reason: str | None = None


class FactCheck(StepModel):
    """One verdict per answer sentence that carries a citation; ``unsupported`` counts the flagged ones."""

    sentences: list[CheckedSentence]
    checked: int
    unsupported: int
    threshold: float
