"""Floors of retrieval quality on the held-out test set (issue 8: hit@5 >= 0.9), over the real Python-docs index."""

from __future__ import annotations

import pytest

from tests.evals import docs_deps
from tests.evals.retrieval import FLOORS, Outcome, load, run_mode


@pytest.fixture(scope="module")
def hybrid_test() -> list[Outcome]:
    return run_mode("hybrid", load("test"), docs_deps())


def test_sets_are_large_enough_and_labelled() -> None:
    for split, least in (("tune", 60), ("test", 60)):
        rows = load(split)
        assert len(rows) >= least, split
        assert all(row["question"].strip() and row["sources"] for row in rows), split
    assert not {r["question"] for r in load("tune")} & {r["question"] for r in load("test")}


def test_hybrid_hit_at_5_meets_the_floor(hybrid_test: list[Outcome]) -> None:
    hits = sum(o.hit(5) for o in hybrid_test) / len(hybrid_test)
    misses = [o.question for o in hybrid_test if not o.hit(5)]
    assert hits >= FLOORS["hit@5"], f"hit@5 {hits:.3f} < {FLOORS['hit@5']}; misses: {misses}"


def test_hybrid_returns_passages_for_every_question(hybrid_test: list[Outcome]) -> None:
    assert all(o.returned for o in hybrid_test)
