"""Safety: PII redaction, prompt-injection and toxicity checks on the request and the answer.

- PII: validating regexes (``steps.pii``); found PII is masked in the answer (verdict ``redact``).
- Prompt injection: rules for the blatant phrasings, plus logistic regression over MiniLM embeddings
  trained at warm-up on the ``bastioncorpus`` package's labelled rows (118 malicious, 63 benign traps)
  and this repository's own benign intent examples. An injection attempt in the request blocks.
- Toxicity: ``alt-profanity-check`` (a linear SVM shipped in its wheel) on request and answer.
"""

from __future__ import annotations

import json
import re
from importlib import resources as importlib_resources
from typing import Any, Literal

import numpy as np

from steps.base import StepContext, StepModel
from steps.classification import load_examples
from steps.deps import Deps
from steps.pii import find_pii, redact
from steps.registry import step

__all__ = ["Safety", "SafetyInput", "SafetyOutput", "injection_rule"]

_INJECTION_RULES = re.compile(
    r"\b(ignore|disregard|forget|override)\b.{0,40}\b(previous|prior|above|earlier|all|your|system)\b.{0,20}"
    r"\b(instructions?|prompts?|rules|guidelines|directions)\b"
    r"|\b(reveal|print|show|repeat|output)\b.{0,30}\b(system prompt|hidden (prompt|instructions)|initial instructions)\b"
    r"|\byou are now\b.{0,40}\b(unrestricted|jailbroken|dan|without (any )?(limits|restrictions|rules))\b"
    r"|\b(developer|god|jailbreak) mode\b",
    re.IGNORECASE | re.DOTALL,
)


def injection_rule(text: str) -> bool:
    """True when ``text`` contains a blatant prompt-injection phrasing."""
    return bool(_INJECTION_RULES.search(text))


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

    def __init__(self, injection_threshold: float = 0.7, toxicity_threshold: float = 0.8) -> None:
        self.injection_threshold = injection_threshold
        self.toxicity_threshold = toxicity_threshold
        self._deps: Deps | None = None
        self._injection_head: Any = None
        self._toxicity: Any = None

    async def warm_up(self, deps: Deps) -> None:
        self._deps = deps
        raw = importlib_resources.files("bastioncorpus").joinpath("corpus/injections.jsonl").read_text(encoding="utf-8")
        rows = [json.loads(line) for line in raw.splitlines() if line.strip()]
        texts = [r["text"] for r in rows] + [t for t, intent in load_examples() if intent != "abuse"]
        labels = [int(r["label"] == "malicious") for r in rows] + [0] * (len(texts) - len(rows))
        vectors = await deps.embedder.embed(texts)
        self._injection_head, self._toxicity = await deps.embedder.run_sync(self._fit, vectors, labels)

    @staticmethod
    def _fit(vectors: np.ndarray, labels: list[int]) -> tuple[object, object]:
        from profanity_check import predict_prob
        from sklearn.linear_model import LogisticRegression

        head = LogisticRegression(C=4.0, class_weight="balanced", max_iter=2000)
        head.fit(vectors, labels)
        return head, predict_prob

    def _score(self, vectors: np.ndarray, texts: list[str]) -> tuple[float, list[float]]:
        injection = float(self._injection_head.predict_proba(vectors[:1])[0][1])
        toxicity = [float(p) for p in self._toxicity(texts)]
        return injection, toxicity

    async def run(self, input: SafetyInput, ctx: StepContext) -> SafetyOutput:
        if self._deps is None or self._injection_head is None:
            raise RuntimeError("Safety.warm_up() must run before run()")
        texts = [input.text, input.answer or " "]
        vectors = await self._deps.embedder.embed(texts[:1])
        injection, (tox_request, tox_answer) = await self._deps.embedder.run_sync(self._score, vectors, texts)
        flags: list[str] = []
        if injection_rule(input.text):
            flags.append("injection:rules")
        elif injection >= self.injection_threshold:
            flags.append("injection:model")
        if tox_request >= self.toxicity_threshold:
            flags.append("toxicity:request")
        if tox_answer >= self.toxicity_threshold:
            flags.append("toxicity:answer")
        request_pii = find_pii(input.text)
        answer_pii = find_pii(input.answer)
        flags += sorted({f"pii:{m.kind}" for m in request_pii + answer_pii})
        scores = {"injection": round(injection, 4), "toxicity": round(max(tox_request, tox_answer), 4)}
        if any(f.startswith(("injection", "toxicity")) for f in flags):
            return SafetyOutput(verdict="block", flags=flags, answer="", scores=scores)
        if request_pii or answer_pii:
            return SafetyOutput(verdict="redact", flags=flags, answer=redact(input.answer, answer_pii), scores=scores)
        return SafetyOutput(verdict="allow", flags=flags, answer=input.answer, scores=scores)
