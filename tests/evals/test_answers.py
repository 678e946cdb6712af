"""Floors for answers (issue 8) on the held-out test split: answers name an expected API and cite a right page.

The issue's floors (``FLOORS``: 0.8 each) are not reached yet. Measured 2026-11-25 on test:
names_api 0.49 (0.17 with the old generator), cites_page 0.73 (0.73 before), where retrieval offers
a right page for 0.80 of the questions. Those tests are strict xfails: they turn into failures the
day the floors are met, and must then become plain tests. ``REGRESSION`` is a floor under the level
reached, enforced now.
"""

from __future__ import annotations

import pytest

from tests.evals.answers import FLOORS, Outcome, names_any, outcomes, rows_for

REGRESSION = {"names_api": 0.4, "cites_page": 0.65}


@pytest.fixture(scope="module")
def test_split() -> list[Outcome]:
    return outcomes("test")


def value(results: list[Outcome], metric: str) -> float:
    (row,) = [r for r in rows_for("test", results) if r.metric == metric]
    return row.value


def test_the_test_set_is_large_enough_and_labelled(test_split: list[Outcome]) -> None:
    assert len(test_split) >= 60
    assert all(o.apis and o.pages for o in test_split)


@pytest.mark.parametrize("metric", sorted(REGRESSION))
def test_no_regression_below_the_level_reached(test_split: list[Outcome], metric: str) -> None:
    assert value(test_split, metric) >= REGRESSION[metric]


@pytest.mark.xfail(strict=True, reason="issue 8 floor not reached yet: names_api 0.49, cites_page 0.73 on test")
@pytest.mark.parametrize("metric", sorted(FLOORS))
def test_issue_floor_on_the_test_split(test_split: list[Outcome], metric: str) -> None:
    assert value(test_split, metric) >= FLOORS[metric]


def test_answers_cite_with_n_markers(test_split: list[Outcome]) -> None:
    answered = [o for o in test_split if not o.answer.startswith("I don't know")]
    assert len(answered) >= 0.9 * len(test_split)
    assert all(o.cited and "[1]" in o.answer for o in answered)


def test_code_is_fenced_never_prose(test_split: list[Outcome]) -> None:
    for o in test_split:
        prose = o.answer.split("\n\n```", 1)[0]
        assert ">>>" not in prose and "\n" not in prose, o.answer
        if "```" in o.answer:
            assert o.answer.count("```") == 2 and o.answer.rstrip().endswith("```")


def test_name_matching_needs_the_whole_name() -> None:
    assert names_any("Use `collections.Counter.most_common(3)` [1].", ["Counter.most_common"])
    assert names_any("`json.loads(s, ...)`: Deserialize s [1].", ["json.loads"])
    assert not names_any("Deserialize s to a Python object [1].", ["json.loads"])
    assert not names_any("Use `json.loadsx` [1].", ["json.loads"])
    assert not names_any("Use `sorted_list` [1].", ["sorted"])
