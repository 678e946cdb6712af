"""Safety: PII redaction, prompt-injection and toxicity checks on the request and the answer.

- PII: validating regexes (``steps.pii``); found PII is masked in the answer (verdict ``redact``).
- Prompt injection (``steps.injection``): the request is read in all its forms first
  (``steps.normalise``: NFKC, zero-width and spacing tricks, leetspeak, ROT13, base64/base32/hex
  blobs), then judged by rules in six languages and by a logistic-regression head over MiniLM
  embeddings trained at warm-up. An injection attempt in the request blocks.
- Toxicity (``steps.toxicity``): directed insults and abusive phrases, masked or not, plus
  ``alt-profanity-check`` on the text without its mild exclamations; on request and answer.

Flags say what fired: ``injection:rules``, ``injection:model``, ``injection:obfuscated`` (only a
decoded or de-obfuscated reading gave it away), ``toxicity:request``, ``toxicity:answer``, ``pii:<kind>``.
The default thresholds were chosen on ``tests/data/eval/safety_tune.jsonl``; see ``tests/evals/safety.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from steps import injection, toxicity
from steps.base import StepContext, StepModel
from steps.deps import Deps
from steps.injection import InjectionHead, injection_rule, rule_hits, training_rows
from steps.normalise import Views, views
from steps.pii import find_pii, redact
from steps.registry import step
from steps.toxicity import Toxicity

__all__ = ["Safety", "SafetyInput", "SafetyNotWarmError", "SafetyOutput", "injection_rule"]


class SafetyNotWarmError(RuntimeError):
    """The safety step ran before ``warm_up(deps)``: the worker (or a test) must await ``warm_up`` first."""


@dataclass(frozen=True)
class _Judgement:
    rules: bool
    rules_hidden_only: bool
    injection: float
    injection_hidden_only: bool
    tox_request: float
    tox_answer: float


class SafetyInput(StepModel):
    text: str
    answer: str = ""


class SafetyOutput(StepModel):
    verdict: Literal["allow", "redact", "block"]
    flags: list[str]
    answer: str
    scores: dict[str, float]
    route: Literal["allow", "redact", "block"] = "allow"  # = verdict: the pipeline routes block to $block

    def model_post_init(self, __context: object) -> None:
        self.route = self.verdict


@step("safety")
class Safety:
    """Checks request and answer; verdict ``allow``, ``redact`` (PII masked) or ``block``."""

    def __init__(
        self,
        injection_threshold: float = injection.DEFAULT_THRESHOLD,
        toxicity_threshold: float = toxicity.DEFAULT_THRESHOLD,
    ) -> None:
        self.injection_threshold = injection_threshold
        self.toxicity_threshold = toxicity_threshold
        self._deps: Deps | None = None
        self._head: InjectionHead | None = None
        self._toxicity: Toxicity | None = None

    async def warm_up(self, deps: Deps) -> None:
        self._deps = deps
        rows = training_rows()
        texts = [views(t).plain for t, _ in rows]
        vectors = await deps.embedder.embed(texts)
        self._head, self._toxicity = await deps.embedder.run_sync(self._fit, vectors, [label for _, label in rows])

    @staticmethod
    def _fit(vectors: np.ndarray, labels: list[int]) -> tuple[InjectionHead, Toxicity]:
        return InjectionHead().fit(vectors, labels), Toxicity()

    def _judge(self, v: Views, vectors: np.ndarray, request: str, answer: str) -> _Judgement:
        assert self._head is not None and self._toxicity is not None
        hits_clean = bool(rule_hits(v.clean))
        hits_any = hits_clean or any(rule_hits(h) for h in v.hidden)
        probs = self._head.score(vectors)
        tox_request, tox_answer = self._toxicity.scores([request, answer or " "])
        return _Judgement(
            rules=hits_any,
            rules_hidden_only=hits_any and not hits_clean,
            injection=float(probs.max()),
            injection_hidden_only=bool(probs[0] < self.injection_threshold <= probs.max()),
            tox_request=tox_request,
            tox_answer=tox_answer,
        )

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        """The classifier's injection probabilities for embedded views (for threshold tuning)."""
        if self._head is None:
            raise SafetyNotWarmError("Safety.warm_up() must run before scores()")
        return self._head.score(vectors)

    async def run(self, input: SafetyInput, ctx: StepContext) -> SafetyOutput:
        if self._deps is None or self._head is None:
            raise SafetyNotWarmError("Safety.warm_up() must run before run(): the worker awaits it at start-up")
        v = views(input.text)
        vectors = await self._deps.embedder.embed([v.clean, *v.hidden])
        j = await self._deps.embedder.run_sync(self._judge, v, vectors, input.text, input.answer)
        flags: list[str] = []
        if j.rules:
            flags.append("injection:rules")
        if j.injection >= self.injection_threshold:
            flags.append("injection:model")
        if (j.rules and j.rules_hidden_only) or (not j.rules and j.injection_hidden_only):
            flags.append("injection:obfuscated")
        if j.tox_request >= self.toxicity_threshold:
            flags.append("toxicity:request")
        if j.tox_answer >= self.toxicity_threshold:
            flags.append("toxicity:answer")
        request_pii = find_pii(input.text)
        answer_pii = find_pii(input.answer)
        flags += sorted({f"pii:{m.kind}" for m in request_pii + answer_pii})
        scores = {"injection": round(j.injection, 4), "toxicity": round(max(j.tox_request, j.tox_answer), 4)}
        if any(f.startswith(("injection", "toxicity")) for f in flags):
            return SafetyOutput(verdict="block", flags=flags, answer="", scores=scores)
        if request_pii or answer_pii:
            return SafetyOutput(verdict="redact", flags=flags, answer=redact(input.answer, answer_pii), scores=scores)
        return SafetyOutput(verdict="allow", flags=flags, answer=input.answer, scores=scores)
