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


def test_a_second_answer_or_a_redelivered_one_never_decides_the_next_approval_of_a_loop() -> None:
    import asyncio

    from streams.app import Settings
    from streams.approvals import ApprovalRequest, ApprovalRouter, is_resume
    from streams.metrics import Metrics
    from streams.outputs import Outputs
    from streams.state import MemoryTable
    from streams.testing import Message, _Queue
    from streams.topics import APPROVAL_DECISIONS, APPROVAL_REQUESTS, APPROVALS

    async def go() -> list[dict[str, Any]]:
        queue = _Queue(lambda: 1000.0)
        router = ApprovalRouter(Outputs(queue, Settings(broker="x:1"), Metrics(), worker="t"), MemoryTable())

        async def feed(topic: str, body: dict[str, Any]) -> None:
            await router.process(Message(topic, b"r1", orjson.dumps(body), 0, 1000.0))
            while queue.pending:  # the router's own re-keyed decisions come back to it
                m = queue.pending.popleft()
                if m.topic == APPROVAL_DECISIONS:
                    await router.process(m)

        def asked(visit: int) -> dict[str, Any]:
            return ApprovalRequest(id="r1", pipeline="p", node="review", summary="s", expires_at=2000.0,
                                   session_key="default/#r1", parked_key=f"default/r1|review|{visit}",
                                   requested_at=1000.0 + visit).model_dump()

        await feed(APPROVAL_REQUESTS, asked(0))
        await feed(APPROVALS, {"id": "r1", "decision": "approve", "by": "alice"})
        await feed(APPROVALS, {"id": "r1", "decision": "approve", "by": "alice"})  # re-delivered
        await feed(APPROVALS, {"id": "r1", "decision": "reject", "by": "bob"})  # a second person, too late
        await feed(APPROVAL_REQUESTS, asked(1))  # the loop asks again: nobody has answered this one
        return [body for v in queue.sent.get("conveyor.p.review", []) if (body := is_resume(v)) is not None]

    resumes = asyncio.run(go())
    assert [(r["key"], r["decision"], r["by"]) for r in resumes] == [("default/r1|review|0", "approve", "alice")]


def test_an_approval_inside_parallel_branches_is_refused_at_load() -> None:
    flow = """
name: mapped
entry: split
nodes:
  - name: split
    step: echo
    next: [review, other]
  - name: review
    step: approval
    routes: {approved: gather, rejected: $fail, expired: $fail}
  - name: other
    step: echo
    next: gather
  - name: gather
    join: {policy: all}
    step: echo
"""
    with pytest.raises(GraphError, match="node 'review', field step: an approval cannot wait inside the branches"):
        parse(flow, "mapped.yaml")


def test_summary_fields_must_be_plain_names() -> None:
    with pytest.raises(GraphError, match=r"summary field \{items\[0\]\} must be a plain state field name"):
        parse(FLOW.replace("Refund for {text}", "Refund for {items[0]}"))
