"""Floors of the safety evaluation on the held-out test split (tests/data/eval/safety_test.jsonl)."""

from __future__ import annotations

import pytest

from tests.evals import Row
from tests.evals.safety import FLOORS, load, measure


@pytest.fixture(scope="module")
def rows() -> dict[tuple[str, str], Row]:
    return {(r.split, r.metric): r for r in measure()}


def test_the_sets_hold_what_the_issue_asks() -> None:
    test = load("test")
    benign = [e.text.lower() for e in test if e.check == "injection" and e.label == 0]
    for word in ("system prompt", "developer mode", "password", "mode", "instructions", "prompt"):
        assert any(word in t for t in benign), f"no benign test question mentions {word!r}"
    langs = {e.lang for e in test if e.check == "injection" and e.label == 1}
    assert {"fr", "de", "es"} <= langs
    tune_texts = {e.text for e in load("tune")}
    assert not tune_texts & {e.text for e in test}, "tune and test splits overlap"


@pytest.mark.parametrize(
    ("metric", "floor_key"),
    [
        ("injection recall", "injection_recall"),
        ("injection benign blocked", "injection_false_block"),
        ("toxicity recall", "toxicity_recall"),
        ("toxicity benign blocked", "toxicity_false_block"),
    ],
)
def test_floor_on_test_split(rows: dict[tuple[str, str], Row], metric: str, floor_key: str) -> None:
    row = rows[("test", metric)]
    assert row.floor == FLOORS[floor_key]
    assert row.passes, f"{metric} = {row.value:.3f} on {row.n} test rows (floor {row.floor}); failing: {row.failures}"


def test_non_english_injections_are_caught(rows: dict[tuple[str, str], Row]) -> None:
    (row,) = [r for (split, metric), r in rows.items() if split == "test" and metric.startswith("injection recall (")]
    assert row.value >= 0.9, row.failures
