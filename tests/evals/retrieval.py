"""Retrieval quality (issue 8 item 3): hit@1 and hit@5 of doc questions, vectors only and hybrid.

Sets: ``tests/data/eval/retrieval_tune.jsonl`` (the RRF constant, the lexical weight and the page-name
field were chosen on it) and ``retrieval_test.jsonl`` (reported; chosen on nothing). A row is a
question written the way users write (terse, misspelt, non-native, a few in French, German or
Spanish) and the pages that answer it (``sources``, e.g. ``library/json.html``). A hit@k counts a
question when one of the first k passages the step returns comes from one of its pages.

Both modes run the real :class:`steps.retrieval.Retrieval` step over the real Python-docs index
(:func:`tests.evals.docs_deps`), with ``top_k=5`` so that hit@5 sees five passages. p50 is the
median in-process latency of one ``run`` after warm-up (embedding included), in seconds.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.evals import DATA, Row, docs_deps

__all__ = ["FLOORS", "Outcome", "load", "measure", "run_mode"]

AREA = "retrieval"
FLOORS = {"hit@5": 0.9}


@dataclass(frozen=True)
class Outcome:
    """One question's result: its pages, the pages returned in order, and the run's latency in seconds."""

    question: str
    expected: frozenset[str]
    returned: tuple[str, ...]
    seconds: float

    def hit(self, k: int) -> bool:
        return any(source in self.expected for source in self.returned[:k])


def load(split: str) -> list[dict[str, Any]]:
    path = DATA / f"retrieval_{split}.jsonl"
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def run_mode(mode: str, rows: list[dict[str, Any]], deps: Any = None) -> list[Outcome]:
    """Every question of ``rows`` through a warmed ``Retrieval(mode=mode, top_k=5)``."""
    from steps.base import StepContext
    from steps.retrieval import Retrieval, RetrievalInput

    deps = deps if deps is not None else docs_deps()
    step = Retrieval(mode=mode, top_k=5)  # type: ignore[arg-type]

    async def go() -> list[Outcome]:
        await step.warm_up(deps)
        await step.run(RetrievalInput(text="warm the embedder"), StepContext(request_id="eval-warm"))
        out = []
        for n, row in enumerate(rows):
            started = time.perf_counter()
            result = await step.run(RetrievalInput(text=row["question"]), StepContext(request_id=f"eval-{n}"))
            seconds = time.perf_counter() - started
            returned = tuple(p.source for p in result.passages)
            out.append(Outcome(row["question"], frozenset(row["sources"]), returned, seconds))
        return out

    return asyncio.run(go())


def _p50(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else 0.0


def rows_for(mode: str, split: str, outcomes: list[Outcome]) -> list[Row]:
    n = len(outcomes)
    misses = [
        f"{o.question!r} -> {list(o.returned[:3])} (want {sorted(o.expected)[:2]})" for o in outcomes if not o.hit(5)
    ]
    near = [f"{o.question!r} -> first {o.returned[:1]}" for o in outcomes if o.hit(5) and not o.hit(1)]
    label = "" if mode == "hybrid" else f" ({mode})"
    floor = FLOORS["hit@5"] if mode == "hybrid" and split == "test" else None
    return [
        Row(AREA, f"hit@1{label}", sum(o.hit(1) for o in outcomes) / n, n, split, failures=near[:5]),
        Row(AREA, f"hit@5{label}", sum(o.hit(5) for o in outcomes) / n, n, split, floor=floor, failures=misses[:8]),
        Row(AREA, f"p50 seconds{label}", _p50([o.seconds for o in outcomes]), n, split, higher_is_better=False),
    ]


def measure() -> list[Row]:
    out: list[Row] = []
    for split in ("tune", "test"):
        data = load(split)
        for mode in ("dense", "hybrid"):
            out.extend(rows_for(mode, split, run_mode(mode, data)))
    return out
