"""Floors for intent classification on the held-out set (issue 8 item 6)."""

from __future__ import annotations

import pytest

from steps.classification import load_examples
from steps.smalltalk import fold
from tests.evals import Row
from tests.evals.intent import FLOOR, load, measure


@pytest.fixture(scope="module")
def rows() -> dict[tuple[str, str], Row]:
    return {(r.split, r.metric): r for r in measure()}


def test_intent_accuracy_on_test_split_meets_floor(rows: dict[tuple[str, str], Row]) -> None:
    row = rows[("test", "accuracy")]
    assert row.n >= 80
    assert row.value >= FLOOR, f"intent accuracy {row.value:.3f} < {FLOOR}; still failing: {row.failures}"


def test_every_language_is_measured_and_routed(rows: dict[tuple[str, str], Row]) -> None:
    for lang in ("en", "fr", "de", "es"):
        row = rows[("test", f"accuracy[{lang}]")]
        assert row.n >= 15, f"too few {lang} examples in the test split"
        assert row.value >= 0.8, f"{lang}: accuracy {row.value:.3f}"
    assert rows[("test", "route accuracy")].value >= FLOOR


def test_sets_do_not_leak_into_each_other_or_the_training_data() -> None:
    train = {fold(t) for t, _ in load_examples()}
    tune = {fold(e.text) for e in load("tune")}
    test = {fold(e.text) for e in load("test")}
    assert not (test & tune), f"in both tune and test: {sorted(test & tune)}"
    assert not (test & train), f"test examples in steps/data/intents.jsonl: {sorted(test & train)}"
    assert not (tune & train), f"tune examples in steps/data/intents.jsonl: {sorted(tune & train)}"


def test_sets_cover_every_intent() -> None:
    for split in ("tune", "test"):
        intents = {e.intent for e in load(split)}
        assert intents == {"howto", "explain", "error", "smalltalk", "abuse"}, split
