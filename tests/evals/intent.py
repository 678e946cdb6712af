"""Intent evaluation (issue 8 item 6): accuracy of the classification step on hand-written requests.

The sets in ``tests/data/eval/intent_{tune,test}.jsonl`` are written the way users write: terse,
misspelt, non-native, and in English, French, German and Spanish; smalltalk includes questions
about the assistant itself ("who made you?"). Each row is ``{"text", "intent", "lang"}``.
``tune`` is what rules, training examples and thresholds were chosen on; ``test`` is only reported.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from steps.base import StepContext
from tests.evals import DATA, Row, docs_deps

__all__ = ["FLOOR", "Example", "classify_all", "load", "measure"]

AREA = "intent"
FLOOR = 0.9


@dataclass(frozen=True)
class Example:
    text: str
    intent: str
    lang: str


def load(split: str) -> list[Example]:
    path = DATA / f"intent_{split}.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [Example(r["text"], r["intent"], r["lang"]) for r in rows]


def _classifier() -> Any:
    from steps.registry import resolve

    runner = resolve("classification").build({})
    asyncio.run(runner.warm_up(docs_deps()))
    return runner


def classify_all(runner: Any, examples: list[Example]) -> tuple[list[str], list[float]]:
    """Predicted intents and per-request latencies (seconds), one request at a time as the worker sees them."""

    async def go() -> tuple[list[str], list[float]]:
        predicted: list[str] = []
        latencies: list[float] = []
        for ex in examples:
            start = time.perf_counter()
            out = await runner.run(runner.Input(text=ex.text), StepContext(request_id="eval"))
            latencies.append(time.perf_counter() - start)
            predicted.append(out.intent)
        return predicted, latencies

    return asyncio.run(go())


def _rows(split: str, examples: list[Example], predicted: list[str]) -> list[Row]:
    floor = FLOOR if split == "test" else None
    wrong = [f"{ex.text!r} ({ex.lang}): {ex.intent} -> {p}" for ex, p in zip(examples, predicted) if p != ex.intent]
    ok = sum(p == ex.intent for ex, p in zip(examples, predicted))
    rows = [Row(AREA, "accuracy", ok / len(examples), len(examples), split, floor, failures=wrong[:8])]
    by_lang: dict[str, list[bool]] = defaultdict(list)
    for ex, p in zip(examples, predicted):
        by_lang[ex.lang].append(p == ex.intent)
    for lang, hits in sorted(by_lang.items()):
        rows.append(Row(AREA, f"accuracy[{lang}]", sum(hits) / len(hits), len(hits), split))
    # the route is what the pipeline acts on: a question answered as a question, whatever its sub-intent
    coarse = {"howto": "question", "explain": "question", "error": "question"}
    routed = sum(coarse.get(p, p) == coarse.get(ex.intent, ex.intent) for ex, p in zip(examples, predicted))
    rows.append(Row(AREA, "route accuracy", routed / len(examples), len(examples), split))
    return rows


def measure() -> list[Row]:
    runner = _classifier()
    rows: list[Row] = []
    for split in ("tune", "test"):
        examples = load(split)
        predicted, latencies = classify_all(runner, examples)
        rows.extend(_rows(split, examples, predicted))
        if split == "test":
            p50_ms = statistics.median(latencies) * 1000
            rows.append(Row(AREA, "p50 latency ms", p50_ms, len(latencies), split, higher_is_better=False))
    return rows
