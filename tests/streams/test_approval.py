"""Human approval in-process (DESIGN.md §6): park, decide through the router, expire, refuse on purpose."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import yaml

import steps.approval  # noqa: F401 - registers the approval step
import steps.echo  # noqa: F401 - registers the echo step
from steps.approval import Approval, ApprovalInput, BadDecisionError, parse_decision
from steps.base import RejectedStepError, StepContext, StepModel
from steps.registry import step
from streams.errors import GraphError
from streams.pipeline_file import parse_pipeline
from streams.testing import run_pipeline

FLOW = """
name: refunds
entry: check
nodes:
  - name: check
    step: echo
    next: review
  - name: review
    step: approval
    config: {timeout_s: 600, summary: "Refund for {text} after {hops} hop(s)"}
    routes: {approved: pay, rejected: $reject, expired: $reject}
  - name: pay
    step: echo
result: [approval, hops]
"""


def parse(text: str, source: str = "refunds.yaml") -> Any:
    return parse_pipeline(yaml.safe_load(text), source)


def spec() -> Any:
    return parse(FLOW)


def test_approved_request_goes_on_and_the_result_says_who_decided() -> None:
    decision = {"decision": "approve", "by": "alice", "comment": "known customer"}
    out = run_pipeline(spec(), [{"id": "r1", "text": "order 17"}], approvals={"r1": decision})
    [result] = out.results
    assert result.status == "ok"
    assert result.output["approval"]["decision"] == "approved"
    assert result.output["approval"]["by"] == "alice"
    assert result.output["approval"]["comment"] == "known customer"
    assert result.output["hops"] == 2  # check, then pay
    assert result.route == ["check", "review (approved by alice)", "pay"]
    [notice] = out.pending
    assert notice.status == "pending_approval" and notice.id == "r1"
    assert notice.output["approval"]["summary"] == "Refund for order 17 after 1 hop(s)"
    assert not out.duplicates


def test_rejected_request_ends_rejected() -> None:
    out = run_pipeline(spec(), [{"id": "r2", "text": "order 18"}], approvals={"r2": "reject"})
    [result] = out.results
    assert result.status == "rejected"
    assert "review" in (result.error or "")


def test_nobody_answers_so_it_expires_to_the_declared_route() -> None:
    out = run_pipeline(spec(), [{"id": "r3", "text": "order 19", "deadline_ms": 1000}], approvals={})
    [result] = out.results
    assert result.status == "rejected"  # routes.expired: $reject
    assert result.route[-1] == "review (expired by timeout)"
    assert [p.id for p in out.pending] == ["r3"]


def test_waiting_does_not_count_against_the_deadline() -> None:
    # deadline 1 s, the person answers after the clock jumped... no: expiry at 600 s is what jumps the clock
    flow = FLOW.replace("expired: $reject", "expired: pay")
    out = run_pipeline(parse(flow), [{"id": "r4", "text": "x", "deadline_ms": 1000}])
    [result] = out.results
    assert result.status == "ok", result.error  # 600 s parked, then pay ran within the 1 s left
    assert result.output["approval"]["decision"] == "expired"
    assert result.output["approval"]["default"] == "rejected"


def test_a_bad_decision_goes_to_the_dead_letters_and_the_request_still_expires() -> None:
    out = run_pipeline(spec(), [{"id": "r5", "text": "y"}], approvals={"r5": "maybe"})
    [result] = out.results
    assert result.status == "rejected" and result.route[-1] == "review (expired by timeout)"
    [letter] = out.dead_letters
    assert letter.step == "approvals" and "approve" in letter.error


def test_decisions_for_two_tenants_under_one_id_reach_their_own_request() -> None:
    out = run_pipeline(
        spec(),
        [{"id": "same", "text": "a", "tenant": "acme"}, {"id": "same", "text": "b", "tenant": "globex"}],
        approvals={"same": "approve"},
    )
    assert sorted((r.tenant, r.status) for r in out.results) == [("acme", "ok"), ("globex", "ok")]


def test_config_and_decisions_are_checked() -> None:
    with pytest.raises(GraphError, match="timeout_s"):
        parse(FLOW.replace("timeout_s: 600", "timeout_s: 0"))
    with pytest.raises(GraphError, match="route"):
        parse(FLOW.replace(", expired: $reject", ""))
    assert parse_decision("YES") == "approved" and parse_decision(False) == "rejected"
    with pytest.raises(BadDecisionError):
        parse_decision("perhaps")
    ask = Approval(summary="{amount:.2f} for {who}").ask(ApprovalInput.model_validate({"amount": 3.14159}),
                                                       StepContext(request_id="x"))
    assert ask.summary == "3.14 for {who}"  # a missing field stays visible, not a crash


class Gate(StepModel):
    text: str


class Never(StepModel):
    answer: str


@step("test-refuses")
async def refuses(input: Gate, ctx: StepContext) -> Never:
    raise RejectedStepError("this flow needs CONVEYOR_SOMETHING=on")


def test_a_step_that_refuses_gives_rejected_without_a_dead_letter() -> None:
    flow = "name: refusing\nentry: gate\nnodes:\n  - name: gate\n    step: test-refuses\n"
    out = run_pipeline(parse(flow, "refusing.yaml"), [{"id": "q", "text": "hi"}])
    [result] = out.results
    assert result.status == "rejected"
    assert result.error == "gate: this flow needs CONVEYOR_SOMETHING=on"
    assert out.dead_letters == []
    assert orjson.loads(orjson.dumps(out.spans[0]))["status"] == "rejected"


class Left(StepModel):
    left_s: float


@step("test-time-left")
async def time_left(input: Gate, ctx: StepContext) -> Left:
    return Left(left_s=ctx.time_left() or -1.0)


def test_a_pipeline_file_sets_the_default_deadline_of_its_requests() -> None:
    flow = "name: slow\ndeadline_ms: 900000\nentry: a\nnodes:\n  - name: a\n    step: test-time-left\nresult: [left_s]\n"
    spec = parse(flow, "slow.yaml")
    assert spec.deadline_ms == 900_000
    out = run_pipeline(spec, [{"id": "d1", "text": "x"}, {"id": "d2", "text": "x", "deadline_ms": 5000}])
    pipeline_default, own = (r.output["left_s"] for r in out.results)
    assert 800 < pipeline_default <= 900 and 0 < own <= 5  # the request's own deadline_ms wins
    plain = run_pipeline(parse(flow.replace("deadline_ms: 900000\n", ""), "slow.yaml"), [{"id": "d3", "text": "x"}])
    assert 0 < plain.results[0].output["left_s"] <= 60  # CONVEYOR_DEFAULT_DEADLINE_MS
    with pytest.raises(GraphError, match="deadline_ms"):
        parse(flow.replace("900000", "0"), "slow.yaml")
