"""The approval node's side of human approval: park a request, resume it on a decision (DESIGN.md §6).

A mixin of :class:`streams.processor.StepProcessor` (kept apart so that the processor stays about
one message's routing): it uses the processor's outputs, tables, routing and settling. The router
that brings decisions here, and the message formats, are in :mod:`streams.approvals`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from steps.base import StepContext
from streams.approvals import ApprovalRequest, approval_request_message, parked_key
from streams.envelope import Envelope, Result
from streams.topics import APPROVAL_REQUESTS
from streams.tracing import StepTrace

if TYPE_CHECKING:
    from streams.processor import StepProcessor

__all__ = ["ParkingMixin", "wrote"]

log = logging.getLogger("streams.processor")
Pending = list["asyncio.Future[Any]"]


def wrote(pending: Pending, delivery: Any) -> None:
    """Keep a table write's changelog delivery: the input is acked only after it."""
    if delivery is not None:
        pending.append(delivery)


class ParkingMixin:
    """Parks requests at an approval node and resumes them (mixed into ``StepProcessor``)."""

    async def _park(self: StepProcessor, message: Any, env: Envelope, parsed: Any, ctx: StepContext,
                    trace: StepTrace, key: str, visit: int, pending: Pending) -> str:
        """Keep the request until a person decides: the parked entry, the approval request, a pending notice."""
        assert self.tables.parked is not None
        ask = self.step.instance.ask(parsed, ctx)
        now = self.clock()
        where = parked_key(env.request.tenant, str(env.request.id), self.node.name, visit)
        summary = self.scrub.text(ask.summary)
        entry = {"env": env.model_dump(mode="json"), "parked_at": now, "expires_at": now + ask.timeout_s,
                 "summary": summary, "session_key": env.request.session_key(), "done": False}
        wrote(pending, self.tables.parked.set(where, entry, message.partition))
        asked = ApprovalRequest(id=str(env.request.id), pipeline=self.pipeline, node=self.node.name, summary=summary,
                                expires_at=now + ask.timeout_s, tenant=env.request.tenant,
                                session_key=env.request.session_key(), parked_key=where, requested_at=now)
        k, v = approval_request_message(asked)
        self.outputs.topic(APPROVAL_REQUESTS)
        pending.append(await self.outputs.send(APPROVAL_REQUESTS, k, v))
        notice = Result(id=str(env.request.id), tenant=env.request.tenant, status="pending_approval",
                        route=[*env.route, f"{self.node.name} (waiting)"], usage=env.usage,
                        latency_ms=round((now - env.published_at) * 1000, 2), trace_id=env.trace_id,
                        output={"approval": {"node": self.node.name, "summary": summary,
                                             "expires_at": round(now + ask.timeout_s, 3)}})
        pending.append(await self.outputs.result(self.pipeline, notice))
        trace.route = "parked"
        log.info("%s: request %s waits for approval until %.0f", self.node.name, env.request.id, now + ask.timeout_s)
        await self._settle(pending, key, env, message.partition, "parked", 0, None, None)
        return "parked"

    async def _resume(self: StepProcessor, message: Any, body: dict[str, Any], started: float, queue_s: float) -> None:
        """A decision (or the expiry) for a parked request: route it on as the approval step's output."""
        assert self.tables.parked is not None
        m = self.outputs.metrics
        entry = self.tables.parked.get(body["key"])
        if entry is None or entry.get("done"):
            m.messages.labels(*self.labels, "late").inc()  # decided already (or expired), or a re-delivery
            log.info("%s: decision %r for %s ignored: %s", self.node.name, body.get("decision"), body["key"],
                     "nothing parked there" if entry is None else f"already {entry.get('decision')}")
            return
        env = Envelope.model_validate(entry["env"])
        now = float(body.get("at") or self.clock())  # when it was decided: a re-delivery decides the same
        try:
            out = self.step.instance.decide(body["decision"], str(body.get("by") or "unknown"),
                                            str(body.get("comment") or ""), parked_at=float(entry["parked_at"]), now=now)
        except ValueError as exc:
            m.messages.labels(*self.labels, "invalid").inc()
            await self.outputs.dead_letter(message, self.pipeline, self.node.name, exc, 0, env.request.id)
            return
        if env.deadline is not None:  # time spent waiting for a person does not count against the deadline
            env.deadline += max(0.0, now - float(entry["parked_at"]))
        trace = StepTrace(env.trace_id, str(env.request.id), self.pipeline, self.node.name, self.outputs.worker,
                          started, queue_s, branch=env.branch_path() or None)
        pending: Pending = []
        output = out.model_dump(mode="json")
        env.merge(output)
        env.route.append(f"{self.node.name} ({output['route']} by {out.approval.by})")
        status = await self._route(message, env, output, trace, pending)
        await asyncio.gather(*pending)
        pending.clear()  # only now: a crash before this re-routes, and the next node skips the duplicate
        small = {k: v for k, v in entry.items() if k != "env"}
        wrote(pending, self.tables.parked.set(body["key"], {**small, "done": True, "decision": output["route"],
                                                             "by": out.approval.by}, message.partition))
        trace.ended_at = self.clock()
        trace.status = status
        m.messages.labels(*self.labels, output["route"]).inc()
        m.processing.labels(*self.labels).observe(trace.ended_at - started)
        pending.append(await self.outputs.span(trace))
        await asyncio.gather(*pending)

    async def _resume_failed(self: StepProcessor, body: dict[str, Any], exc: BaseException, partition: int) -> None:
        """A decision that could not be applied: the parked request ends ``failed`` (its one final result)."""
        assert self.tables.parked is not None
        entry = self.tables.parked.get(body["key"])
        if entry is None or entry.get("done"):
            return
        pending: Pending = []
        try:
            env = Envelope.model_validate(entry["env"])
            await self._end(env, "failed", f"{self.node.name}: applying the decision failed: {type(exc).__name__}: "
                                           f"{self.scrub.text(str(exc))[:300]}", pending)
            await asyncio.gather(*pending)
            pending.clear()
            wrote(pending, self.tables.parked.set(body["key"], {**{k: v for k, v in entry.items() if k != "env"},
                                                                 "done": True, "decision": "failed"}, partition))
            await asyncio.gather(*pending)
        except Exception:  # noqa: BLE001 - the dead letter is the record of it
            log.exception("%s: could not end a parked request after an unexpected error", self.node.name)

