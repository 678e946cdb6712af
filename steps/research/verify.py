"""Does a passage support a claim? Embedding similarity and token overlap, vetoed by negation and number checks.

A claim (one answer sentence, markers stripped) is compared with each sentence of its cited passage
and with the whole passage; ``similarity`` is the best MiniLM cosine and ``overlap`` the share of the
claim's content words that occur in the passage. The score is ``WEIGHT * similarity + (1 - WEIGHT) *
overlap``, and the claim is supported when the score reaches ``THRESHOLD`` and no veto fires:

- ``number``: the claim writes a number the passage does not hold (``3.5`` against ``3``);
- ``negation``: the claim and its best-matching passage sentence disagree on negation (``not``,
  ``never``, ``without``, ``n't`` ...) or on a prefixed opposite (``mutable``/``immutable``), which
  embeddings barely see.

``WEIGHT`` and ``THRESHOLD`` were chosen by :func:`tune` on ``tests/data/factcheck_tune.jsonl`` only
(54 claims): weight 1.0, so token overlap did not earn a share of the score there. On
``tests/data/factcheck_test.jsonl`` (51 claims on other passages): accuracy 0.86; *supported*
precision 0.79, recall 0.90; *unsupported* (flag) precision 0.93, recall 0.83. What it misses:
antonyms and swapped entities that keep the wording ("server" for "client", "minutes" for "seconds",
"many threads" for "one thread"). ``tests/steps/test_research_factcheck.py`` checks all of this.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from steps.research.text import clauses, content_tokens, negations, numbers, polarity_flips, sentences, strip_markers

__all__ = ["THRESHOLD", "WEIGHT", "Features", "Verdict", "judge", "measure", "passage_units", "tune"]

WEIGHT = 1.0  # tune() on the tune split: token overlap did not add accuracy there
THRESHOLD = 0.83

Reason = Literal["number", "negation", "low-score"]


@dataclass(frozen=True)
class Features:
    """What :func:`judge` decides on, for one claim against one passage."""

    similarity: float
    overlap: float
    number_mismatch: bool
    negation_mismatch: bool

    def score(self, weight: float = WEIGHT) -> float:
        return weight * self.similarity + (1.0 - weight) * self.overlap


@dataclass(frozen=True)
class Verdict:
    supported: bool
    score: float
    reason: Reason | None


def passage_units(passage: str) -> list[str]:
    """The texts a claim is compared with: each sentence, then the clauses of each, then the whole passage.

    Sentences come first: the negation and polarity checks read the best-matching *sentence*.
    """
    whole = sentences(passage)
    parts = [c for s in whole for c in clauses(s) if c != s.rstrip(".")]
    return list(dict.fromkeys(whole + parts + ([passage] if len(whole) > 1 else [])))


def features(claim: str, passage: str, claim_vector: np.ndarray, unit_vectors: np.ndarray) -> Features:
    """Features of ``claim`` against ``passage``; the vectors are unit-norm embeddings of the claim and of
    :func:`passage_units` (in that order)."""
    claim = strip_markers(claim)
    units = passage_units(passage)
    cosines = unit_vectors @ claim_vector if len(units) else np.zeros(1, dtype=np.float32)
    best = int(np.argmax(cosines))
    count = len(sentences(passage))
    aligned = units[int(np.argmax(cosines[:count]))] if count else ""
    claim_words = set(content_tokens(claim))
    passage_words = set(content_tokens(passage))
    overlap = len(claim_words & passage_words) / len(claim_words) if claim_words else 0.0
    return Features(
        similarity=float(cosines[best]),
        overlap=overlap,
        number_mismatch=bool(numbers(claim) - numbers(passage)),
        negation_mismatch=negations(claim) % 2 != negations(aligned) % 2 or bool(polarity_flips(claim, aligned)),
    )


def judge(f: Features, weight: float = WEIGHT, threshold: float = THRESHOLD) -> Verdict:
    """Supported or not, with the score and, when not, the first reason."""
    score = round(f.score(weight), 4)
    if f.number_mismatch:
        return Verdict(False, score, "number")
    if f.negation_mismatch:
        return Verdict(False, score, "negation")
    if score < threshold:
        return Verdict(False, score, "low-score")
    return Verdict(True, score, None)


@dataclass(frozen=True)
class Measure:
    """How verdicts compare with labels; "flag" is the verdict *unsupported*."""

    n: int
    accuracy: float
    supported_precision: float
    supported_recall: float
    flag_precision: float
    flag_recall: float


def measure(verdicts: list[bool], labels: list[bool]) -> Measure:
    """Precision and recall of both verdicts (``True`` = supported) against the labels."""
    pairs = list(zip(verdicts, labels, strict=True))
    tp = sum(v and y for v, y in pairs)
    fp = sum(v and not y for v, y in pairs)
    fn = sum(not v and y for v, y in pairs)
    tn = sum(not v and not y for v, y in pairs)

    def ratio(a: int, b: int) -> float:
        return round(a / b, 4) if b else 0.0

    return Measure(len(pairs), ratio(tp + tn, len(pairs)), ratio(tp, tp + fp), ratio(tp, tp + fn),
                   ratio(tn, tn + fn), ratio(tn, tn + fp))


def tune(rows: list[Features], labels: list[bool]) -> tuple[float, float]:
    """(weight, threshold) with the best accuracy on ``rows``; ties go to the higher threshold (fewer false passes)."""
    best: tuple[float, float, float] = (-1.0, 0.0, 0.0)
    for weight in (0.0, 0.25, 0.5, 0.75, 1.0):
        for step in range(20, 96):
            threshold = step / 100
            verdicts = [judge(f, weight, threshold).supported for f in rows]
            accuracy = measure(verdicts, labels).accuracy
            if (accuracy, threshold) > (best[0], best[2]):
                best = (accuracy, weight, threshold)
    return best[1], best[2]
