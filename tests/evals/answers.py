"""Answers that name the thing (issue 8, item 1): the extractive generator over the real Python-docs index.

Each question of ``answers_{tune,test}.jsonl`` goes through the retrieval step as it is and then the
generation step, as in the support pipeline. An answer *names an expected API* when one of the
question's ``apis`` appears in it as a name (``json.loads``; ``Counter.most_common`` also matches
``collections.Counter.most_common``); it *cites a right page* when one of its citations is one of
the question's ``pages`` (``page_retrieved``: the share where retrieval offered one, its ceiling).
Generation time is recorded, not judged (benchmarks never assert time).
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import time
from dataclasses import dataclass
from typing import Any

from tests.evals import DATA, Row, docs_deps

AREA = "answers"
FLOORS = {"names_api": 0.8, "cites_page": 0.8}


@dataclass
class Outcome:
    question: str
    answer: str
    cited: list[str]
    apis: list[str]
    pages: list[str]
    generation_ms: float
    retrieved: list[str]

    @property
    def page_retrieved(self) -> bool:
        """Whether retrieval offered a right page at all (the most ``cites_page`` can reach)."""
        return any(page in self.pages for page in self.retrieved)

    @property
    def names_api(self) -> bool:
        return names_any(self.answer, self.apis)

    @property
    def cites_page(self) -> bool:
        return any(page in self.pages for page in self.cited)


def names_any(answer: str, apis: list[str]) -> bool:
    """Whether ``answer`` names one of ``apis``: as a whole name, optionally after a module/class prefix."""
    return any(re.search(rf"(?<![\w]){re.escape(api)}(?![\w])", answer) for api in apis)


def load(split: str) -> list[dict[str, Any]]:
    path = DATA / f"{AREA}_{split}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


async def _answer_all(rows: list[dict[str, Any]]) -> list[Outcome]:
    from steps.base import StepContext
    from steps.registry import resolve

    deps: Any = docs_deps()
    retrieval = resolve("retrieval").build({})
    generation = resolve("generation").build({})
    await retrieval.warm_up(deps)
    await generation.warm_up(deps)
    out: list[Outcome] = []
    for i, row in enumerate(rows):
        ctx = StepContext(request_id=f"eval-{AREA}-{i}")
        found = await retrieval.run(retrieval.Input(text=row["question"]), ctx)
        start = time.perf_counter()
        answer = await generation.run(generation.Input(text=row["question"], passages=found.passages), ctx)
        elapsed = (time.perf_counter() - start) * 1000
        out.append(Outcome(row["question"], answer.answer, [c.source for c in answer.citations], row["apis"],
                           row["pages"], elapsed, [p.source for p in found.passages]))
    return out


def outcomes(split: str) -> list[Outcome]:
    return asyncio.run(_answer_all(load(split)))


def rows_for(split: str, results: list[Outcome]) -> list[Row]:
    n = len(results)
    named = [r for r in results if not r.names_api]
    cited = [r for r in results if not r.cites_page]
    return [
        Row(AREA, "names_api", round(1 - len(named) / n, 3), n, split, FLOORS["names_api"],
            failures=[f"{r.question!r} (expected {r.apis[0]}) -> {r.answer[:110]!r}" for r in named[:5]]),
        Row(AREA, "cites_page", round(1 - len(cited) / n, 3), n, split, FLOORS["cites_page"],
            failures=[f"{r.question!r} (expected {r.pages[0]}) -> cited {r.cited}" for r in cited[:5]]),
        Row(AREA, "page_retrieved", round(sum(r.page_retrieved for r in results) / n, 3), n, split),
        Row(AREA, "generation_p50_ms", round(statistics.median(r.generation_ms for r in results), 1), n, split,
            None, higher_is_better=False),
    ]


def measure() -> list[Row]:
    rows: list[Row] = []
    for split in ("tune", "test"):
        rows.extend(rows_for(split, outcomes(split)))
    return rows
