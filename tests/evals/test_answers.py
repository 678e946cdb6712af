"""Floors for answers (issue 8): on the held-out test split, answers name an expected API and cite a right page."""

from __future__ import annotations

import pytest

from tests.evals.answers import FLOORS, Outcome, names_any, outcomes, rows_for


@pytest.fixture(scope="module")
def test_split() -> list[Outcome]:
    return outcomes("test")


def test_the_test_set_is_large_enough_and_labelled(test_split: list[Outcome]) -> None:
    assert len(test_split) >= 60
    assert all(o.apis and o.pages for o in test_split)


@pytest.mark.parametrize("metric", sorted(FLOORS))
def test_floor_on_the_test_split(test_split: list[Outcome], metric: str) -> None:
    (row,) = [r for r in rows_for("test", test_split) if r.metric == metric]
    assert row.value >= FLOORS[metric], (row.value, row.failures)


def test_every_answer_cites_with_n_markers(test_split: list[Outcome]) -> None:
    answered = [o for o in test_split if not o.answer.startswith("I don't know")]
    assert len(answered) >= 0.9 * len(test_split)
    assert all(o.cited and "[1]" in o.answer for o in answered)


def test_name_matching_needs_the_whole_name() -> None:
    assert names_any("Use `collections.Counter.most_common(3)` [1].", ["Counter.most_common"])
    assert names_any("`json.loads(s, ...)`: Deserialize s [1].", ["json.loads"])
    assert not names_any("Deserialize s to a Python object [1].", ["json.loads"])
    assert not names_any("Use `json.loadsx` [1].", ["json.loads"])
    assert not names_any("Use `sorted_list` [1].", ["sorted"])
