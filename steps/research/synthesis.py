"""Synthesis: an answer with ``[n]`` citations, from the findings of both sources.

Offline (no chat model configured) it is extractive: the findings' key sentences closest to the
question, the best one of each source first (when it reaches ``min_each``), at most ``max_sentences``, each tagged with its source.
With a chat model (``deps.llm_configured``) the model writes the answer from the numbered findings
(``model=ctx.model``; tokens and cost recorded); the fact-check then tests what it wrote.
Either way sources are numbered 1..m in the order the answer first cites them, and ``sources`` holds
exactly those, with their passage text, so ``citations[n-1]`` is source ``[n]``.
"""

from __future__ import annotations

import re
import time

from steps.base import StepContext, StepModel
from steps.deps import Deps
from steps.generation import Citation, cost_usd
from steps.registry import step
from steps.research.models import Finding, NumberedSource

__all__ = ["ResearchSynthesis", "Synthesis", "SynthesisInput", "cite", "number_sources", "pick_sentences"]

NO_ANSWER = "I don't know: neither the Python docs nor WordNet has anything relevant to this question."
SYSTEM = (
    "You answer research questions only from the numbered findings in the user message. End every sentence "
    "that uses a finding with its number in brackets, like [2]. Do not add facts the findings do not state. "
    "If the findings do not answer the question, say you don't know. At most five sentences."
)
_MARKER = re.compile(r"\[(\d+)\]")


class SynthesisInput(StepModel):
    question: str
    findings: list[Finding] = []


class Synthesis(StepModel):
    answer: str
    citations: list[Citation]
    sources: list[NumberedSource]
    method: str
    model: str


def pick_sentences(
    findings: list[Finding], max_sentences: int, min_score: float, min_each: float = 0.45
) -> list[tuple[int, str]]:
    """(finding index, sentence) pairs: each origin's best sentence when it reaches ``min_each``, then the
    best others at or above ``min_score``; in finding order."""
    scored = sorted(
        ((score, i, j) for i, f in enumerate(findings) for j, score in enumerate(f.sentence_scores) if score >= min_score),
        key=lambda t: (-t[0], t[1], t[2]),
    )
    chosen: list[tuple[int, int]] = []
    for origin in dict.fromkeys(f.origin for f in findings):
        best = next(((score, i, j) for score, i, j in scored if findings[i].origin == origin), None)
        if best is not None and best[0] >= min_each:
            chosen.append(best[1:])
    for _, i, j in scored:
        if len(chosen) >= max_sentences:
            break
        if (i, j) not in chosen and findings[i].sentences[j] not in {findings[a].sentences[b] for a, b in chosen}:
            chosen.append((i, j))
    return [(i, findings[i].sentences[j]) for i, j in sorted(chosen)]


def cite(sentence: str, k: int) -> str:
    """``sentence`` with ``[k]`` before its closing punctuation: "... itself [1]."."""
    body = sentence.rstrip()
    end = body[-1] if body and body[-1] in ".!?" else "."
    return f"{body.rstrip('.!?').rstrip()} [{k}]{end}"


def number_sources(text: str, findings: list[Finding]) -> tuple[str, list[NumberedSource]]:
    """Renumber the ``[k]`` markers (k = 1-based finding index) as 1..m in order of first citation.

    A marker naming no finding is left as it is (the fact-check flags it); it cannot collide with a
    new number, which never exceeds the number of findings.
    """
    order: list[int] = []
    for match in _MARKER.finditer(text):
        k = int(match.group(1))
        if 1 <= k <= len(findings) and k not in order:
            order.append(k)
    new = {k: n for n, k in enumerate(order, 1)}
    renumbered = _MARKER.sub(lambda m: f"[{new.get(int(m.group(1)), m.group(1))}]", text)
    sources = [
        NumberedSource(n=n, source=f.source, title=f.title, origin=f.origin, score=f.score, text=f.text)
        for n, f in ((new[k], findings[k - 1]) for k in order)
    ]
    return renumbered, sources


def _citations(sources: list[NumberedSource]) -> list[Citation]:
    return [Citation(source=s.source, title=s.title, score=s.score) for s in sources]


@step("research-synthesis")
class ResearchSynthesis:
    """The answer, with ``[n]`` citations: extractive offline, written by the chat model when one is configured."""

    calls_model = True  # budgets and tiers are enforced before it runs

    def __init__(
        self, max_sentences: int = 4, min_score: float = 0.3, min_each: float = 0.45, max_tokens: int = 400,
        use_llm: bool = True,
    ) -> None:
        self.max_sentences = max_sentences
        self.min_score = min_score
        self.min_each = min_each
        self.max_tokens = max_tokens
        self.use_llm = use_llm
        self._deps: Deps | None = None

    async def warm_up(self, deps: Deps) -> None:
        self._deps = deps

    async def run(self, input: SynthesisInput, ctx: StepContext) -> Synthesis:
        if self._deps is None:
            raise RuntimeError("ResearchSynthesis.warm_up() must run before run()")
        if not input.findings:
            return Synthesis(answer=NO_ANSWER, citations=[], sources=[], method="none", model="none")
        if self.use_llm and self._deps.llm_configured:
            return await self._written(input, ctx)
        picked = pick_sentences(input.findings, self.max_sentences, self.min_score, self.min_each)
        if not picked:
            return Synthesis(answer=NO_ANSWER, citations=[], sources=[], method="none", model="none")
        text, sources = number_sources(" ".join(cite(s, i + 1) for i, s in picked), input.findings)
        return Synthesis(answer=text, citations=_citations(sources), sources=sources, method="extractive",
                         model="conveyor-extractive")

    async def _written(self, input: SynthesisInput, ctx: StepContext) -> Synthesis:
        assert self._deps is not None
        chat = self._deps.chat("the research synthesis")
        numbered = "\n\n".join(
            f"[{k}] {f.title} ({f.source}): " + " ".join(f.sentences) for k, f in enumerate(input.findings, 1)
        )
        messages = [{"role": "system", "content": SYSTEM},
                    {"role": "user", "content": f"Findings:\n{numbered}\n\nQuestion: {input.question}"}]
        started = time.time()
        reply = await chat.chat(messages, model=ctx.model, max_tokens=self.max_tokens)
        cost = cost_usd(self._deps.prices, reply.model, reply.input_tokens, reply.output_tokens)
        ctx.record_usage(reply.model, reply.input_tokens, reply.output_tokens, cost)
        ctx.record_span("llm.synthesis", started, time.time(), kind="llm", **{
            "gen_ai.request.model": reply.model, "gen_ai.usage.input_tokens": reply.input_tokens,
            "gen_ai.usage.output_tokens": reply.output_tokens})
        text, sources = number_sources(reply.content.strip() or NO_ANSWER, input.findings)
        return Synthesis(answer=text, citations=_citations(sources), sources=sources, method="llm", model=reply.model)
