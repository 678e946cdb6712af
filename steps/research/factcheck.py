"""Fact-check: every answer sentence that cites ``[n]`` is tested against the passage of source ``n``.

The decision is :func:`steps.research.verify.judge` (MiniLM similarity with a threshold tuned on
labelled examples, vetoed by number, negation and prefixed-opposite checks). A sentence citing several
sources is supported when one of them supports it. A marker naming no source is unsupported.
Sentences without a marker are not checked (they claim nothing from a source).
"""

from __future__ import annotations

import re

from steps.base import StepContext, StepModel
from steps.deps import Deps
from steps.registry import step
from steps.providers import clean_markup
from steps.research.models import CheckedSentence, FactCheck, NumberedSource
from steps.research.text import sentences, strip_markers
from steps.research.verify import THRESHOLD, features, judge, passage_units

__all__ = ["FactCheckInput", "FactCheckOutput", "ResearchFactCheck"]


class FactCheckInput(StepModel):
    answer: str
    sources: list[NumberedSource] = []


class FactCheckOutput(StepModel):
    factcheck: FactCheck


@step("research-factcheck")
class ResearchFactCheck:
    """One verdict per cited sentence, and how many are unsupported."""

    def __init__(self, threshold: float = THRESHOLD) -> None:
        self.threshold = threshold
        self._deps: Deps | None = None

    async def warm_up(self, deps: Deps) -> None:
        self._deps = deps

    async def run(self, input: FactCheckInput, ctx: StepContext) -> FactCheckOutput:
        if self._deps is None:
            raise RuntimeError("ResearchFactCheck.warm_up() must run before run()")
        # the passages as the findings read them (reST roles unwrapped): extractive sentences match them exactly
        by_n = {s.n: s.model_copy(update={"text": clean_markup(s.text)}) for s in input.sources}
        claims = [(s, [int(n) for n in _markers(s)]) for s in sentences(input.answer)]
        claims = [(s, ns) for s, ns in claims if ns]
        texts: list[str] = []
        for sentence, ns in claims:
            texts.append(strip_markers(sentence))
            for n in ns:
                if n in by_n:
                    texts += passage_units(by_n[n].text)
        vectors = await self._deps.embedder.embed(texts) if texts else None
        checked: list[CheckedSentence] = []
        at = 0
        for sentence, ns in claims:
            claim_vector = vectors[at]  # type: ignore[index]
            at += 1
            best: CheckedSentence | None = None
            for n in ns:
                source = by_n.get(n)
                if source is None:
                    verdict = CheckedSentence(sentence=sentence, n=n, source=None, score=0.0, supported=False,
                                              reason="unknown-source")
                else:
                    count = len(passage_units(source.text))
                    f = features(sentence, source.text, claim_vector, vectors[at: at + count])  # type: ignore[index]
                    at += count
                    v = judge(f, threshold=self.threshold)
                    verdict = CheckedSentence(sentence=sentence, n=n, source=source.source, score=v.score,
                                              supported=v.supported, reason=v.reason)
                if best is None or (verdict.supported, verdict.score) > (best.supported, best.score):
                    best = verdict
            assert best is not None
            checked.append(best)
        unsupported = sum(not c.supported for c in checked)
        return FactCheckOutput(factcheck=FactCheck(sentences=checked, checked=len(checked), unsupported=unsupported,
                                                   threshold=self.threshold))


def _markers(sentence: str) -> list[str]:
    return list(dict.fromkeys(re.findall(r"\[(\d+)\]", sentence)))
