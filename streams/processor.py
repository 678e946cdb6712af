"""What happens to one message: ingress (validate, key, route), a step (run under policy, route on),
and the cost ledger. Faust-facing only through the ``event`` and table objects handed in.

Delivery is at-least-once. Each step writes its outcome to its ``request-state`` table only after
what it produced was acknowledged by the broker, and skips a request that table already holds:
a message re-delivered after a crash does not call a model twice, bill twice or answer twice.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from steps.base import Step, StepContext, Turn
from streams.app import Settings
from streams.envelope import (
    Citation,
    DeadLetter,
    Envelope,
    Request,
    Result,
    SafetyReport,
    Status,
    decode,
    encode,
    new_request_id,
)
from streams.errors import EnvelopeDecodeError
from streams.graph import END, REJECT, GraphSpec, Node
from streams.metrics import Metrics
from streams.policy import run_with_policy
from streams.topics import DLQ, LEDGER, RESULTS, TRACES, raw_topic, step_topic
from streams.tracing import StepTrace

__all__ = ["IngressProcessor", "LedgerProcessor", "Outputs", "StepProcessor"]

log = logging.getLogger(__name__)
RECENT_IDS = 500  # request ids remembered per tenant to drop re-delivered ledger entries


def _key(value: str | None) -> bytes | None:
    return value.encode("utf-8") if value is not None else None


class Outputs:
    """Producing from an app: results, dead letters, spans and forwards, delivery awaited."""

    def __init__(self, app: Any, settings: Settings, metrics: Metrics, worker: str) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.worker = worker
        self._topics: dict[str, Any] = {}

    def topic(self, name: str) -> Any:
        if name not in self._topics:
            self._topics[name] = raw_topic(self.app, name, self.settings.partitions)
        return self._topics[name]

    async def declare(self) -> None:
        for topic in self._topics.values():
            await topic.maybe_declare()

    async def send(self, name: str, key: str | None, value: bytes, *, wait: bool = True) -> None:
        # force=True: send now, never attached to the event being processed
        pending = await self.topic(name).send(key=_key(key), value=value, force=True)
        if wait:
            await pending

    async def result(self, pipeline: str, result: Result) -> None:
        await self.send(RESULTS, result.id, encode(result))
        self.metrics.request_latency.labels(pipeline, result.status).observe(result.latency_ms / 1000)

    async def dead_letter(
        self, message: Any, pipeline: str | None, step: str, error: BaseException | str, attempts: int, request_id: str | None
    ) -> None:
        value, encoding = DeadLetter.text_of(message.value)
        error_class = type(error).__name__ if isinstance(error, BaseException) else "Error"
        letter = DeadLetter(
            value=value,
            value_encoding=encoding,
            key=message.key.decode("utf-8", "replace") if message.key else None,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            pipeline=pipeline,
            step=step,
            request_id=request_id,
            error_class=error_class,
            error=str(error),
            attempts=attempts,
        )
        await self.send(DLQ, request_id, encode(letter))
        self.metrics.dlq.labels(pipeline or "-", step, error_class).inc()

    async def span(self, trace: StepTrace) -> None:
        await self.send(TRACES, trace.trace_id, orjson.dumps(trace.to_dict()), wait=False)


class IngressProcessor:
    """``conveyor.requests`` → validated envelope on the pipeline's entry topic, keyed by session."""

    def __init__(self, outputs: Outputs, pipelines: dict[str, GraphSpec], settings: Settings) -> None:
        self.outputs = outputs
        self.pipelines = pipelines
        self.settings = settings

    async def process(self, event: Any) -> None:
        message = event.message
        m = self.outputs.metrics
        started = time.time()
        m.queue.labels("-", "ingress").observe(max(0.0, started - message.timestamp))
        try:
            request = self._validate(message.value)
        except EnvelopeDecodeError as exc:
            m.messages.labels("-", "ingress", "invalid").inc()
            await self.outputs.dead_letter(message, None, "ingress", exc, 0, exc.request_id)
            if exc.request_id:
                latency = (time.time() - message.timestamp) * 1000
                rejected = Result(id=exc.request_id, status="rejected", error=exc.reason, latency_ms=round(latency, 2))
                await self.outputs.result("-", rejected)
            return
        spec = self.pipelines[request.pipeline]
        deadline_ms = request.deadline_ms or self.settings.default_deadline_ms
        envelope = Envelope(
            request=request,
            trace_id=uuid.uuid4().hex,
            published_at=message.timestamp,
            request_offset=message.offset,
            deadline=message.timestamp + deadline_ms / 1000 if deadline_ms else None,
        )
        await self.outputs.send(step_topic(spec.name, spec.entry), request.session_key(), encode(envelope))
        m.messages.labels(spec.name, "ingress", "ok").inc()
        m.processing.labels(spec.name, "ingress").observe(time.time() - started)

    def _validate(self, raw: bytes | None) -> Request:
        request = decode(raw, Request)
        if len(request.text) > self.settings.max_text_chars:
            raise EnvelopeDecodeError(
                f"text is {len(request.text)} characters, over the limit of {self.settings.max_text_chars} "
                "(CONVEYOR_MAX_TEXT_CHARS)",
                request.id,
            )
        if request.pipeline not in self.pipelines:
            raise EnvelopeDecodeError(
                f"unknown pipeline {request.pipeline!r}; known: {sorted(self.pipelines)}", request.id
            )
        if request.id is None:
            request = request.model_copy(update={"id": new_request_id()})
        return request


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
    request_state: Any
    session_history: Any | None = None


class StepProcessor:
    """Runs one node's step on one envelope and sends the outcome where the graph says."""

    def __init__(self, spec: GraphSpec, node: Node, step: Step, outputs: Outputs, tables: StepTables) -> None:
        self.spec = spec
        self.node = node
        self.step = step
        self.outputs = outputs
        self.tables = tables
        self.pipeline = spec.name
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
        request_id = str(env.request.id)
        if self.tables.request_state.get(request_id) is not None:
            m.messages.labels(*labels, "skipped").inc()  # re-delivery of a request this step finished
            return
        trace = StepTrace(env.trace_id, request_id, self.pipeline, self.node.name, self.outputs.worker, started, queue_s)
        m.inflight.labels(*labels).inc()
        try:
            status = await self._run(event, env, trace)
        finally:
            m.inflight.labels(*labels).dec()
        trace.ended_at = time.time()
        trace.status = status
        m.messages.labels(*labels, status).inc()
        m.processing.labels(*labels).observe(trace.ended_at - started)
        await self.outputs.span(trace)

    async def _run(self, event: Any, env: Envelope, trace: StepTrace) -> str:
        request = env.request
        ctx = StepContext(
            request_id=str(request.id), tenant=request.tenant, session=request.session, deadline=env.deadline
        )
        history = self.tables.session_history
        history_key = request.session_key() if request.session and history is not None else None
        if history is not None and history_key is not None:
            ctx.history = [Turn.model_validate(t) for t in (history.get(history_key) or [])]
        m = self.outputs.metrics
        try:
            step_input = self.step.Input.model_validate(env.step_input())
        except ValidationError as exc:
            return await self._fail(event, env, trace, exc, 0, "failed")

        def on_retry(attempt: int, error: BaseException) -> None:
            m.retries.labels(self.pipeline, self.node.name).inc()
            log.warning("%s: retry %d of %s after %s", self.node.name, attempt, request.id, error)

        outcome = await run_with_policy(
            lambda: self.step.run(step_input, ctx), self.node.policy, deadline=env.deadline, on_retry=on_retry
        )
        trace.attempt = outcome.attempts
        trace.usage = ctx.usage
        for u in ctx.usage:
            env.usage.add(u.input_tokens, u.output_tokens, u.cost_usd)
            m.record_usage(self.pipeline, self.node.name, request.tenant, u.model, u.input_tokens, u.output_tokens, u.cost_usd)
        if outcome.status != "ok":
            return await self._fail(event, env, trace, outcome.error, outcome.attempts, outcome.status)
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
            await self._finish(env, status, error)
        elif target == REJECT:
            status = "rejected"
            await self._finish(env, status, f"refused by {self.node.name}: route {output.get('route')!r}")
        else:
            await self.outputs.send(step_topic(self.pipeline, target), request.session_key(), encode(env))
        if history is not None and history_key is not None:
            turn = self._turn(str(request.id), step_input, outcome.value, env)
            if turn is not None:
                self._remember_turn(history, history_key, turn, ctx.history)
        self._record(request.id, "done", outcome.attempts, env.route, target, _summary(output))
        return status

    def _turn(self, request_id: str, step_input: Any, output: Any, env: Envelope) -> Turn | None:
        make_turn = getattr(self.step, "turn", None)
        if make_turn is None:
            return None
        turn: Turn = make_turn(request_id, step_input, output)
        return turn.model_copy(update={"asked_at": env.published_at, "sequence": env.request_offset})

    def _remember_turn(self, table: Any, key: str, turn: Turn, history: list[Turn]) -> None:
        """Add a turn to the session's history: once per request id, in publish order, bounded length."""
        if any(t.request_id == turn.request_id for t in history):
            return
        limit = self.outputs.settings.history_turns
        turns = sorted(history + [turn], key=lambda t: (t.asked_at, t.sequence))[-limit:] if limit else []
        table[key] = [t.model_dump(mode="json") for t in turns]

    async def _fail(self, event: Any, env: Envelope, trace: StepTrace, error: BaseException | None, attempts: int, status: str) -> str:
        text = f"{type(error).__name__}: {error}" if error is not None else "unknown error"
        trace.error = text
        log.warning("%s: request %s %s after %d attempt(s): %s", self.node.name, env.request.id, status, attempts, text)
        final: Status = "timeout" if status == "timeout" else "failed"
        await self._finish(env, final, f"{self.node.name}: {text}")
        if final == "failed":
            await self.outputs.dead_letter(
                event.message, self.pipeline, self.node.name, error or RuntimeError(text), attempts, env.request.id
            )
        self._record(env.request.id, final, attempts, env.route, None, None)
        return final

    async def _finish(self, env: Envelope, status: Status, error: str | None) -> None:
        """Emit the request's final result, and its cost entry for the ledger."""
        state = env.state
        safety = SafetyReport(verdict=state["verdict"], flags=state.get("flags", [])) if "verdict" in state else None
        result = Result(
            id=str(env.request.id),
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
        await self.outputs.result(self.pipeline, result)
        entry = {
            "tenant": env.request.tenant,
            "request_id": result.id,
            "pipeline": self.pipeline,
            "status": status,
            **env.usage.model_dump(),
        }
        await self.outputs.send(LEDGER, env.request.tenant, orjson.dumps(entry))

    def _record(self, request_id: Any, status: str, attempts: int, route: list[str], target: str | None, output: Any) -> None:
        self.tables.request_state[str(request_id)] = {
            "status": status,
            "attempts": attempts,
            "route": list(route),
            "next": target,
            "output": output,
            "at": round(time.time(), 3),
        }


class LedgerProcessor:
    """Folds cost entries (keyed by tenant) into the ``cost-ledger`` table, once per request id."""

    def __init__(self, outputs: Outputs, table: Any) -> None:
        self.outputs = outputs
        self.table = table

    async def process(self, event: Any) -> None:
        m = self.outputs.metrics
        try:
            entry = orjson.loads(event.message.value)
            tenant = str(entry["tenant"])
            request_id = str(entry["request_id"])
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            m.messages.labels("-", "ledger", "invalid").inc()
            await self.outputs.dead_letter(event.message, None, "ledger", exc, 0, None)
            return
        totals = dict(self.table.get(tenant) or {"requests": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0, "recent": []})
        if request_id in totals["recent"]:
            m.messages.labels("-", "ledger", "skipped").inc()
            return
        totals["requests"] += 1
        totals["input_tokens"] += int(entry.get("input_tokens", 0))
        totals["output_tokens"] += int(entry.get("output_tokens", 0))
        totals["cost_usd"] = round(totals["cost_usd"] + float(entry.get("cost_usd", 0.0)), 10)
        totals["recent"] = (totals["recent"] + [request_id])[-RECENT_IDS:]
        self.table[tenant] = totals
        m.messages.labels("-", "ledger", "ok").inc()

