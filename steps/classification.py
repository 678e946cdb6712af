"""Classification: intent of a request and the route it takes through the pipeline.

A rules pre-router settles the obvious cases (greetings, thanks, direct abuse) deterministically;
everything else goes to a logistic-regression head over MiniLM sentence embeddings, trained at
warm-up from the labelled examples in ``steps/data/intents.jsonl`` (about 30 per intent).
"""

from __future__ import annotations

import json
import re
from importlib import resources as importlib_resources
from typing import Any, Literal, cast

import numpy as np

from steps.base import StepContext, StepModel
from steps.deps import Deps
from steps.registry import step

__all__ = ["Classification", "ClassificationInput", "ClassificationOutput", "INTENT_ROUTES"]

Intent = Literal["howto", "explain", "error", "smalltalk", "abuse"]
Route = Literal["question", "smalltalk", "abuse"]
INTENT_ROUTES: dict[str, Route] = {
    "howto": "question",
    "explain": "question",
    "error": "question",
    "smalltalk": "smalltalk",
    "abuse": "abuse",
}

_SMALLTALK = re.compile(
    r"^\W*(hi|hello|hey|howdy|yo|good (morning|afternoon|evening|night)|thanks?( you)?( (a lot|so much))?|"
    r"thx|cheers|bye|goodbye|see you( later)?|ok(ay)?( thanks)?|cool)\b[\s\w,]{0,20}[!.?\s]*$",
    re.IGNORECASE,
)
_ABUSE = re.compile(
    r"\b(fuck (you|off)|shut up|kill yourself|go to hell|eat shit|"
    r"you(?:'re| are)( such| so)? (a |an )?(stupid|idiot|moron|useless|worthless|dumb|pathetic))\b",
    re.IGNORECASE,
)


class ClassificationInput(StepModel):
    text: str


class ClassificationOutput(StepModel):
    intent: Intent
    confidence: float
    route: Route
    method: Literal["rules", "model"]


def load_examples() -> list[tuple[str, str]]:
    """(text, intent) pairs kept in the repository."""
    raw = importlib_resources.files("steps").joinpath("data/intents.jsonl").read_text(encoding="utf-8")
    rows = [json.loads(line) for line in raw.splitlines() if line.strip()]
    return [(r["text"], r["intent"]) for r in rows]


def rule_intent(text: str) -> Intent | None:
    """The pre-router: an intent for the obvious cases, else None."""
    if _ABUSE.search(text):
        return "abuse"
    if _SMALLTALK.match(text.strip()):
        return "smalltalk"
    return None


@step("classification")
class Classification:
    """Intent classifier and router: ``route`` is ``question``, ``smalltalk`` or ``abuse``."""

    def __init__(self, unsure_below: float = 0.55) -> None:
        self.unsure_below = unsure_below
        self._head: Any = None
        self._labels: list[Intent] = []
        self._deps: Deps | None = None

    async def warm_up(self, deps: Deps) -> None:
        self._deps = deps
        examples = load_examples()
        vectors = await deps.embedder.embed([t for t, _ in examples])
        self._head = await deps.embedder.run_sync(self._fit, vectors, [i for _, i in examples])

    def _fit(self, vectors: np.ndarray, labels: list[str]) -> object:
        from sklearn.linear_model import LogisticRegression

        head = LogisticRegression(C=10.0, max_iter=2000)
        head.fit(vectors, labels)
        self._labels = [cast(Intent, label) for label in head.classes_]
        return head

    async def run(self, input: ClassificationInput, ctx: StepContext) -> ClassificationOutput:
        ruled = rule_intent(input.text)
        if ruled is not None:
            return ClassificationOutput(intent=ruled, confidence=1.0, route=INTENT_ROUTES[ruled], method="rules")
        if self._deps is None or self._head is None:
            raise RuntimeError("Classification.warm_up() must run before run()")
        vector = await self._deps.embedder.embed([input.text])
        probs = self._head.predict_proba(vector)[0]
        best = int(np.argmax(probs))
        intent = self._labels[best]
        confidence = float(probs[best])
        # An unsure non-question verdict on something phrased as a question is treated as a question:
        # answering a question is cheaper than refusing a user by mistake.
        if INTENT_ROUTES[intent] != "question" and confidence < self.unsure_below and "?" in input.text:
            intent = "howto"
        return ClassificationOutput(
            intent=intent, confidence=round(confidence, 4), route=INTENT_ROUTES[intent], method="model"
        )
