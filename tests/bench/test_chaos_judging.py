"""How the kill campaign judges results (bench/chaos_view.py): pure, no broker."""

from __future__ import annotations

from typing import Any

from bench.chaos import expected_outcome
from bench.chaos_view import tally


def result(rid: str, answer: str | None, **fields: Any) -> dict[str, Any]:
    return {"id": rid, "status": "ok", "answer": answer, "route": ["e1", "e2", "e3", "e4"], "latency_ms": 12.0,
            "trace_id": "t1", **fields}


PUBLISHED = {rid: {"id": rid, "text": f"text of {rid}"} for rid in ("a", "b", "c", "d", "e")}


def test_replays_that_differ_only_in_timing_trace_and_route_order_are_duplicates_not_conflicts() -> None:
    results = {
        "a": [result("a", "text of a"), result("a", "text of a", latency_ms=900.0, trace_id="t2",
                                               route=["e2", "e1", "e3", "e4"])],
        "b": [result("b", "text of b"), result("b", "something else")],
        "c": [result("c", None, status="failed")],
        "d": [result("d", "text of d")],
        "zz": [result("zz", "not ours")],
    }
    t = tally(PUBLISHED, results, expected_outcome("echo"))
    assert t.answered == ["a", "b", "c", "d"]
    assert t.lost == ["e"]
    assert t.conflicting == ["b"]
    assert t.duplicates == 1  # a's second copy; b's two differing copies are a conflict, not a duplicate
    assert t.wrong == ["b", "c"]  # b has an answer that is not the echo, c did not succeed
    assert t.unexpected == 1


def test_no_expected_outcome_means_nothing_is_wrong() -> None:
    t = tally(PUBLISHED, {"a": [result("a", "anything")]}, expected_outcome("support"))
    assert t.wrong == [] and t.lost == ["b", "c", "d", "e"]
