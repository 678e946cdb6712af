"""Floors for PII detection on the held-out split (``pii_test.jsonl``); see ``tests/evals/pii.py``."""

from __future__ import annotations

import pytest

from tests.evals import Row
from tests.evals.pii import load, score


@pytest.fixture(scope="module")
def rows() -> dict[str, Row]:
    return {r.metric: r for r in score(load("test"), "test")}


def _explain(row: Row) -> str:
    return f"{row.metric} = {row.value:.3f} on {row.n} ({row.split}), floor {row.floor}; failing: {row.failures}"


@pytest.mark.parametrize("kind", ["email", "iban", "credit_card", "ipv6", "ipv4", "us_ssn", "phone"])
def test_each_kind_is_found_whole(rows: dict[str, Row], kind: str) -> None:
    row = rows[f"recall_{kind}"]
    assert row.n >= 4 and row.passes, _explain(row)


@pytest.mark.parametrize("kind", ["email", "iban", "credit_card", "ipv6", "ipv4", "us_ssn", "phone"])
def test_each_kind_rarely_redacts_what_is_not_pii(rows: dict[str, Row], kind: str) -> None:
    row = rows[f"false_redactions_{kind}"]
    assert row.passes, _explain(row)


def test_overall_recall_and_false_redactions(rows: dict[str, Row]) -> None:
    assert rows["recall"].n >= 100 and rows["recall"].value >= 0.95, _explain(rows["recall"])
    assert rows["false_redactions"].value <= 0.05, _explain(rows["false_redactions"])
    clean = rows["clean_texts_redacted"]
    assert clean.n >= 50 and clean.passes, _explain(clean)

