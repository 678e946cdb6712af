"""What happens to one message at a pipeline step: run it under its policy and route the outcome on.

Delivery is at-least-once. A step writes its outcome to its ``request-state`` table (keyed by
tenant and request id) after everything it produced was acknowledged by the broker, and skips a
request that table already holds: a message re-delivered after a crash does not call a model
twice, bill twice or answer twice. Its input is acked (and so committed) only after that.
History, request state, spans, dead letters and log lines carry scrubbed text (``streams.privacy``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from steps.base import Step, StepContext, Turn
from streams.envelope import Citation, Envelope, Result, SafetyReport, Status, decode, encode
from streams.errors import EnvelopeDecodeError
from streams.graph import END, REJECT, GraphSpec, Node
from streams.outputs import Outputs, TooLargeError
from streams.policy import run_with_policy
from streams.state import ExpiringTable
from streams.topics import LEDGER, step_topic
from streams.tracing import StepTrace

__all__ = ["StepProcessor", "StepTables"]

log = logging.getLogger(__name__)


def _summary(value: Any, limit: int = 240) -> Any:
    """A bounded copy of a step output for the request-state table."""
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + "…"
    if isinstance(value, list):
        return [_summary(v, limit) for v in value[:10]]
    if isinstance(value, dict):
        return {k: _summary(v, limit) for k, v in value.items() if k != "text"}
    return value


@dataclass
class StepTables:
    request_state: ExpiringTable
    session_history: ExpiringTable | None = None


class StepProcessor:
    """Runs one node's step on one envelope and sends the outcome where the graph says."""

    def __init__(self, spec: GraphSpec, node: Node, step: Step, outputs: Outputs, tables: StepTables, history_turns: int) -> None:
        self.spec = spec
        self.node = node
        self.step = step
        self.outputs = outputs
        self.tables = tables
        self.history_turns = history_turns
        self.pipeline = spec.name
        self.scrub = outputs.scrub
        outputs.metrics.declare(self.pipeline, node.name)

    async def process(self, event: Any) -> None:
        message = event.message
        m = self.outputs.metrics
        labels = (self.pipeline, self.node.name)
        started = time.time()
        queue_s = max(0.0, started - message.timestamp)
        m.queue.labels(*labels).observe(queue_s)
        try:
            env = decode(message.value, Envelope)
        except EnvelopeDecodeError as exc:
            m.messages.labels(*labels, "invalid").inc()
            await self.outputs.dead_letter(message, self.pipeline, self.node.name, exc, 0, exc.request_id)
            return
        request_key = env.request.request_key()
        if self.tables.request_state.get(request_key) is not None:
            m.messages.labels(*labels, "skipped").inc()  # re-delivery of a request this step finished
            return
        trace = StepTrace(env.trace_id, str(env.request.id), self.pipeline, self.node.name, self.outputs.worker, started, queue_s)
        pending: list[asyncio.Future[Any]] = []
        m.inflight.labels(*labels).inc()
        try:
            status = await self._run(event, env, trace, pending)
        finally:
            m.inflight.labels(*labels).dec()
        trace.ended_at = time.time()
        trace.status = status
        m.messages.labels(*labels, status).inc()
        m.processing.labels(*labels).observe(trace.ended_at - started)
        pending.append(await self.outputs.span(trace))
        await asyncio.gather(*pending)  # everything this message produced is on the broker: now it may be acked

    async def _run(self, event: Any, env: Envelope, trace: StepTrace, pending: list[asyncio.Future[Any]]) -> str:
        request = env.request
        partition = event.message.partition
        ctx = StepContext(request_id=str(request.id), tenant=request.tenant, session=request.session, deadline=env.deadline)
        history = self.tables.session_history if request.session is not None else None
        if history is not None:
            ctx.history = [Turn.model_validate(t) for t in (history.get(request.session_key()) or [])]
        m = self.outputs.metrics
        try:
            step_input = self.step.Input.model_validate(env.step_input())
        except ValidationError as exc:
            return await self._fail(event, env, trace, exc, 0, "failed", pending)

        def on_retry(attempt: int, error: BaseException) -> None:
            m.retries.labels(self.pipeline, self.node.name).inc()
            log.warning("%s: retry %d of %s after %s", self.node.name, attempt, request.id, self.scrub.text(str(error))[:300])

        outcome = await run_with_policy(
            lambda: self.step.run(step_input, ctx), self.node.policy, deadline=env.deadline, on_retry=on_retry
        )
        trace.attempt = outcome.attempts
        trace.usage = ctx.usage
        for u in ctx.usage:
            env.usage.add(u.input_tokens, u.output_tokens, u.cost_usd)
            m.record_usage(self.pipeline, self.node.name, request.tenant, u.model, u.input_tokens, u.output_tokens, u.cost_usd)
        if outcome.status != "ok":
            return await self._fail(event, env, trace, outcome.error, outcome.attempts, outcome.status, pending)
        output = outcome.value.model_dump(mode="json")
        env.state.update(output)
        env.route.append(self.node.name)
        target = self.node.routes[output["route"]] if self.node.routes else (self.node.next or END)
        trace.route = target
        status: Status = "ok"
        if target == END:
            if env.state.get("verdict") == "block":
                status = "blocked"
            error = f"blocked by safety: {', '.join(env.state.get('flags', []))}" if status == "blocked" else None
            pending += await self._finish(env, status, error)
        elif target == REJECT:
            status = "rejected"
            pending += await self._finish(env, status, f"refused by {self.node.name}: route {output.get('route')!r}")
        else:
            value = encode(env)
            try:
                self.outputs.check_size(f"the envelope for {target!r}", value)
            except TooLargeError as exc:
                return await self._fail(event, env, trace, exc, outcome.attempts, "failed", pending)
            pending.append(await self.outputs.send(step_topic(self.pipeline, target), request.session_key(), value))
        if history is not None:
            turn = self._turn(str(request.id), step_input, outcome.value, env)
            if turn is not None:
                self._remember_turn(history, request.session_key(), turn, ctx.history, partition)
        await asyncio.gather(*pending)  # recorded as done only once its outputs are on the broker
        pending.clear()
        self._record(env, partition, "done", outcome.attempts, target, _summary(self.scrub.value(output)))
        return status

    def _turn(self, request_id: str, step_input: Any, output: Any, env: Envelope) -> Turn | None:
        make_turn = getattr(self.step, "turn", None)
        if make_turn is None:
            return None
        turn: Turn = make_turn(request_id, step_input, output)
        return turn.model_copy(update={
            "asked_at": env.published_at,
            "sequence": env.request_offset,
            "question": self.scrub.text(turn.question),
            "answer": self.scrub.text(turn.answer),
            "passages": self.scrub.value(turn.passages),
        })

    def _remember_turn(self, table: ExpiringTable, key: str, turn: Turn, history: list[Turn], partition: int) -> None:
        """Add a turn to the session's history: once per request id, in publish order, bounded length."""
        if any(t.request_id == turn.request_id for t in history):
            return
        limit = self.history_turns
        turns = sorted(history + [turn], key=lambda t: (t.asked_at, t.sequence))[-limit:] if limit else []
        table.set(key, [t.model_dump(mode="json") for t in turns], partition)

    async def _fail(
        self, event: Any, env: Envelope, trace: StepTrace, error: BaseException | None, attempts: int, status: str,
        pending: list[asyncio.Future[Any]],
    ) -> str:
        text = self.scrub.text(f"{type(error).__name__}: {error}" if error is not None else "unknown error")
        trace.error = text
        log.warning("%s: request %s %s after %d attempt(s): %s", self.node.name, env.request.id, status, attempts, text[:500])
        final: Status = "timeout" if status == "timeout" else "failed"
        pending += await self._finish(env, final, f"{self.node.name}: {text}")
        if final == "failed":
            await self.outputs.dead_letter(
                event.message, self.pipeline, self.node.name, error or RuntimeError(text), attempts, env.request.id
            )
        await asyncio.gather(*pending)
        pending.clear()
        self._record(env, event.message.partition, final, attempts, None, None)
        return final

    async def _finish(self, env: Envelope, status: Status, error: str | None) -> list[asyncio.Future[Any]]:
        """Emit the request's final result, and its cost entry for the ledger; returns their deliveries."""
        state = env.state
        safety = SafetyReport(verdict=state["verdict"], flags=state.get("flags", [])) if "verdict" in state else None
        result = Result(
            id=str(env.request.id),
            tenant=env.request.tenant,
            status=status,
            answer=(state.get("answer") or None) if status == "ok" else None,
            citations=[Citation.model_validate(c) for c in state.get("citations", [])],
            route=env.route,
            intent=state.get("intent"),
            usage=env.usage,
            latency_ms=round((time.time() - env.published_at) * 1000, 2),
            trace_id=env.trace_id,
            safety=safety,
            error=error,
        )
        entry = {
            "tenant": env.request.tenant,
            "request_id": result.id,
            "pipeline": self.pipeline,
            "status": status,
            **env.usage.model_dump(),
        }
        return [
            await self.outputs.result(self.pipeline, result),
            await self.outputs.send(LEDGER, env.request.tenant, orjson.dumps(entry)),
        ]

    def _record(self, env: Envelope, partition: int, status: str, attempts: int, target: str | None, output: Any) -> None:
        value = {"status": status, "attempts": attempts, "route": list(env.route), "next": target, "output": output}
        self.tables.request_state.set(env.request.request_key(), value, partition)
