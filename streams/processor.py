"""What happens to one message at a pipeline node: run its step under its policy and route the outcome.

Routing (DESIGN.md §5): ``next`` (one node, or a list: parallel fan-out), ``routes`` (on
``Output.route``), ``map`` (one branch per item), ``fallback`` (when retries are exhausted),
``max_visits``/``on_limit`` (bounded loops) and the terminal targets ``$end``/``$reject``/
``$block``/``$fail``. The runtime reads no step's fields to decide a status.

Delivery is at-least-once. Each execution (node, visit, branch) is recorded in the node's
``request-state`` table after everything it produced was acknowledged by the broker, and a
re-delivered execution is skipped: nothing is billed or answered twice. Only a message outside
every fan-out emits a final result, so a request gets exactly one (a branch's failure goes to its
join, which decides). History, request state, spans, dead letters and logs carry scrubbed text.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

import orjson
from pydantic import ValidationError

from steps.base import StepContext, Turn
from streams import joins
from streams.approvals import is_resume
from streams.budget import BudgetGate, TierChoice, before_step, note_spend
from streams.dispatch import sleep_without_slot
from streams.envelope import Citation, Envelope, Frame, Result, SafetyReport, Status, decode, encode
from streams.errors import EnvelopeDecodeError
from streams.graph import TERMINALS, GraphInfo, GraphSpec, Node
from streams.outputs import Outputs, TooLargeError
from streams.parking import ParkingMixin
from streams.parking import wrote as _wrote
from streams.policy import Outcome, run_with_policy
from streams.state import StateTable
from streams.topics import LEDGER, step_topic
from streams.tracing import StepTrace

__all__ = ["StepProcessor", "StepTables"]

log = logging.getLogger(__name__)
Pending = list["asyncio.Future[Any]"]


def _summary(value: Any, limit: int = 240) -> Any:
    """A bounded copy of a step output for the request-state table."""
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + "…"
    if isinstance(value, list):
        return [_summary(v, limit) for v in value[:10]]
    if isinstance(value, dict):
        return {k: _summary(v, limit) for k, v in value.items() if k != "text"}
    return value


def _replayed(message: Any) -> bool:
    """Whether ``conveyor dlq replay`` republished this message (a failed execution may then run again)."""
    headers = getattr(message, "headers", None) or []
    items = headers.items() if isinstance(headers, dict) else headers
    return any(k == "conveyor-replay" for k, _ in items)


@dataclass
class StepTables:
    request_state: StateTable
    session_history: StateTable | None = None
    joins: StateTable | None = None
    parked: StateTable | None = None  # an approval node's requests waiting for a decision


class StepProcessor(ParkingMixin):
    """Runs one node's step on one envelope and sends the outcome where the graph says."""

    def __init__(
        self, spec: GraphSpec, info: GraphInfo, node: Node, step: Any, outputs: Outputs, tables: StepTables,
        history_turns: int, clock: Callable[[], float] = time.time, budget: BudgetGate | None = None,
    ) -> None:
        self.spec = spec
        self.info = info
        self.node = node
        self.step = step
        self.outputs = outputs
        self.tables = tables
        self.history_turns = history_turns
        self.clock = clock
        self.budget = budget  # model tiers and tenant budgets (streams/budget.py); None: neither
        self.pipeline = spec.name
        self.scrub = outputs.scrub
        self.labels = (self.pipeline, node.name)
        outputs.metrics.declare(self.pipeline, node.name)

    # -- one message -------------------------------------------------------------------------

    async def process(self, message: Any) -> None:
        m = self.outputs.metrics
        started = self.clock()
        queue_s = max(0.0, started - message.timestamp)
        m.queue.labels(*self.labels).observe(queue_s)
        if self.tables.parked is not None:
            resume = is_resume(message.value)
            if resume is not None:
                await self._resume(message, resume, started, queue_s)
                return
        try:
            env = decode(message.value, Envelope)
        except EnvelopeDecodeError as exc:
            m.messages.labels(*self.labels, "invalid").inc()
            await self.outputs.dead_letter(message, self.pipeline, self.node.name, exc, 0, exc.request_id)
            return
        pending: Pending = []
        fired: tuple[str, dict[str, Any]] | None = None
        step_input: dict[str, Any] | None = None
        if self.node.join is not None and env.frames and env.frames[-1].join == self.node.name:
            gathered = await self._arrive(message, env, pending)
            if gathered is None:
                await asyncio.gather(*pending)
                return
            env, step_input, fired = gathered
        key = self._execution_key(env)
        done = self.tables.request_state.get(key)
        if done is not None and not (_replayed(message) and done.get("status") in ("failed", "timeout")):
            m.messages.labels(*self.labels, "skipped").inc()  # re-delivery of an execution this node finished
            return
        trace = StepTrace(env.trace_id, str(env.request.id), self.pipeline, self.node.name, self.outputs.worker,
                          started, queue_s, branch=env.branch_path() or None)
        m.inflight.labels(*self.labels).inc()
        try:
            status = await self._execute(message, env, step_input, trace, key, pending)
        finally:
            m.inflight.labels(*self.labels).dec()
        if fired is not None and self.tables.joins is not None:  # only now: a crash before re-fires the join
            _wrote(pending, self.tables.joins.set(fired[0], {**fired[1], "fired": True}, message.partition))
        trace.ended_at = self.clock()
        trace.status = status
        m.messages.labels(*self.labels, status).inc()
        m.processing.labels(*self.labels).observe(trace.ended_at - started)
        pending.append(await self.outputs.span(trace))
        for child in trace.children:
            pending.append(await self.outputs.span(child))
        await asyncio.gather(*pending)  # everything this message produced is on the broker: now it may be acked

    async def unexpected(self, message: Any, exc: BaseException) -> None:
        """After an error escaped ``process`` (dead-lettered by the caller): the request still gets its end."""
        resume = is_resume(message.value) if self.tables.parked is not None else None
        if resume is not None:
            await self._resume_failed(resume, exc, message.partition)
            return
        try:
            env = decode(message.value, Envelope)
        except EnvelopeDecodeError:
            return
        if env.tick or self.tables.request_state.get(self._execution_key(env)) is not None:
            return  # it had settled (the error came after): its outcome stands
        pending: Pending = []
        try:
            await self._end(env, "failed", f"{self.node.name}: unexpected {type(exc).__name__}: "
                                           f"{self.scrub.text(str(exc))[:300]}", pending)
            await asyncio.gather(*pending)
        except Exception:  # noqa: BLE001 - the dead letter is the record of it; nothing more can be done here
            log.exception("%s: could not end request after an unexpected error", self.node.name)

    def _execution_key(self, env: Envelope) -> str:
        visit = env.visits.get(self.node.name, 0)
        return f"{env.request.request_key()}|{self.node.name}|{visit}|{env.branch_path()}"

    # -- running the step --------------------------------------------------------------------

    async def _execute(
        self, message: Any, env: Envelope, step_input: dict[str, Any] | None, trace: StepTrace, key: str, pending: Pending
    ) -> str:
        node = self.node
        visits = env.visits.get(node.name, 0)
        if node.max_visits is not None and visits >= node.max_visits:
            trace.route = node.on_limit
            env.route.append(f"{node.name} (limit)")
            status = await self._go(message, env, node.on_limit, pending, note=f"{node.name} visited {visits} times")
            await self._settle(pending, key, env, message.partition, "limit", 0, node.on_limit, None)
            return "limit" if status == "ok" else status
        env.visits[node.name] = visits + 1
        ctx = StepContext(request_id=str(env.request.id), tenant=env.request.tenant, session=env.request.session,
                          deadline=env.deadline)
        history = self.tables.session_history if env.request.session is not None else None
        if history is not None:
            ctx.history = [Turn.model_validate(t) for t in (history.get(env.request.session_key()) or [])]
        try:
            parsed = self.step.Input.model_validate(step_input if step_input is not None else env.view())
        except ValidationError as exc:
            return await self._failed(message, env, trace, key, Outcome("failed", attempts=0, error=exc), pending)
        if getattr(self.step, "parks", False) and self.tables.parked is not None:
            return await self._park(message, env, parsed, ctx, trace, key, visits, pending)
        refused = await before_step(self.budget, node, self.step, env, ctx, trace, self.outputs.metrics)
        if refused is not None:
            return await self._refuse_over_budget(message, env, trace, key, refused, pending)
        outcome = await self._run(parsed, ctx, env)
        trace.attempt = outcome.attempts
        trace.usage = ctx.usage
        trace.children = [trace.child(span) for span in ctx.spans]
        for u in ctx.usage:
            env.usage.add(u.input_tokens, u.output_tokens, u.cost_usd)
            self.outputs.metrics.record_usage(self.pipeline, node.name, env.request.tenant, u.model,
                                              u.input_tokens, u.output_tokens, u.cost_usd)
        note_spend(self.budget, env, ctx)
        if outcome.status != "ok":
            return await self._failed(message, env, trace, key, outcome, pending)
        output = outcome.value.model_dump(mode="json")
        env.merge(output)
        env.route.append(node.name)
        status = await self._route(message, env, output, trace, pending)
        if history is not None:
            turn = self._turn(str(env.request.id), parsed, outcome.value, env)
            if turn is not None:
                self._remember_turn(history, env.request.session_key(), turn, ctx.history, message.partition, pending)
        await self._settle(pending, key, env, message.partition, "done", outcome.attempts, trace.route,
                           _summary(self.scrub.value(output, context=env.state)))
        return status

    async def _run(self, parsed: Any, ctx: StepContext, env: Envelope) -> Outcome:
        m = self.outputs.metrics

        def on_retry(attempt: int, error: BaseException) -> None:
            m.retries.labels(*self.labels).inc()
            log.warning("%s: retry %d of %s after %s", self.node.name, attempt, env.request.id,
                        self.scrub.text(str(error))[:300])

        return await run_with_policy(lambda: self.step.run(parsed, ctx), self.node.policy, deadline=env.deadline,
                                     on_retry=on_retry, sleep=sleep_without_slot)

    async def _settle(self, pending: Pending, key: str, env: Envelope, partition: int, status: str, attempts: int,
                      target: str | None, output: Any) -> None:
        """Record the execution as done, once what it produced is on the broker."""
        await asyncio.gather(*pending)
        pending.clear()
        value = {"status": status, "attempts": attempts, "route": list(env.route), "next": target, "output": output}
        _wrote(pending, self.tables.request_state.set(key, value, partition))

    # -- model tier and budget (streams/budget.py) ------------------------------------------------

    async def _refuse_over_budget(self, message: Any, env: Envelope, trace: StepTrace, key: str, choice: TierChoice,
                                  pending: Pending) -> str:
        """The tenant is over its budget and CONVEYOR_OVER_BUDGET=reject: end ``rejected``, the step never runs."""
        reason = f"{self.node.name}: {choice.rejected}"
        log.info("%s: request %s rejected: %s", self.node.name, env.request.id, reason)
        trace.error = reason
        env.route.append(f"{self.node.name} (over budget)")
        await self._end(env, "rejected", reason, pending)
        await self._settle(pending, key, env, message.partition, "rejected", 0, None, None)
        return "rejected"

    # -- where the outcome goes ----------------------------------------------------------------

    async def _route(self, message: Any, env: Envelope, output: dict[str, Any], trace: StepTrace, pending: Pending) -> str:
        node = self.node
        if node.map is not None:
            items = output.get(node.map.over) or []
            trace.route = f"map {node.map.to} x{len(items)}"
            return await self._fan_out(message, env, [node.map.to] * len(items), pending, items=list(items))
        if isinstance(node.next, list):
            trace.route = ",".join(node.next)
            return await self._fan_out(message, env, list(node.next), pending)
        target = node.routes[str(output.get("route"))] if node.routes else (node.next or "$end")
        trace.route = target
        return await self._go(message, env, target, pending, note=f"route {output.get('route')!r}" if node.routes else None)

    async def _go(self, message: Any, env: Envelope, target: str, pending: Pending, note: str | None = None) -> str:
        """Send ``env`` on to ``target``: a node's topic, or a terminal (a final result, or the branch's end)."""
        if target not in TERMINALS:
            return await self._forward(message, env, target, pending)
        status: Status = TERMINALS[target]  # type: ignore[assignment]
        error = None if status == "ok" else f"{self.node.name}: {target}" + (f" ({note})" if note else "")
        if env.frames:  # only $fail can end a branch (validated): it arrives at the join as missing
            return await self._branch_failed(env, error or "ended", pending)
        pending += await self._finish(env, status, error)
        return status

    async def _forward(self, message: Any, env: Envelope, target: str, pending: Pending) -> str:
        value = encode(env)
        try:
            self.outputs.check_size(f"the envelope for {target!r}", value)
        except TooLargeError as exc:
            return await self._end(env, "failed", f"{self.node.name}: {exc}", pending)
        pending.append(await self.outputs.send(step_topic(self.pipeline, target), env.request.session_key(), value))
        return "ok"

    async def _fan_out(self, message: Any, env: Envelope, starts: list[str], pending: Pending,
                       items: list[Any] | None = None) -> str:
        node = self.node
        join = self.info.join_of[node.name]
        kind = "map" if items is not None else "static"
        labels = [str(i) for i in range(len(starts))] if kind == "map" else list(starts)
        pass_id = f"{env.branch_path()}>{node.name}.{env.visits.get(node.name, 0)}"
        timeout = self.spec.node(join).join.timeout_s  # type: ignore[union-attr]
        base = dict(fanout=node.name, join=join, kind=kind, pass_id=pass_id, expected=labels, started_at=self.clock(),
                    timeout_s=timeout, base_route=list(env.route), base_usage=env.usage.model_copy(),
                    base_visits=dict(env.visits))
        if not starts:  # a map over nothing: the join fires at once with no items
            child = env.model_copy(deep=True)
            child.frames.append(Frame(branch="", **base))
            return await self._forward(message, child, join, pending)
        for i, (start, label) in enumerate(zip(starts, labels, strict=True)):
            child = env.model_copy(deep=True)
            child.route, child.usage = [], type(env.usage)()
            local = {"item": items[i], "index": i} if items is not None else {}
            child.frames.append(Frame(branch=label, local=local, **base))
            status = await self._forward(message, child, start, pending)
            if status != "ok":
                return status
        return "ok"

    async def _branch_failed(self, env: Envelope, error: str, pending: Pending) -> str:
        env.frames[-1].failed = error
        pending.append(await self.outputs.send(step_topic(self.pipeline, env.frames[-1].join), env.request.session_key(),
                                               encode(env)))
        return "failed"

    async def _end(self, env: Envelope, status: Status, error: str, pending: Pending) -> str:
        if env.frames:
            return await self._branch_failed(env, error, pending)
        pending += await self._finish(env, status, error)
        return status

    async def _failed(self, message: Any, env: Envelope, trace: StepTrace, key: str, outcome: Outcome, pending: Pending) -> str:
        node = self.node
        error = outcome.error
        text = self.scrub.text(f"{type(error).__name__}: {error}" if error is not None else "unknown error")
        trace.error = text
        if node.fallback is not None and outcome.status == "failed":  # not "rejected": a refusal is an answer
            log.warning("%s: request %s falls back to %s after %d attempt(s): %s", node.name, env.request.id,
                        node.fallback, outcome.attempts, text[:500])
            env.route.append(f"{node.name} (failed)")
            trace.route = node.fallback
            await self._forward(message, env, node.fallback, pending)
            await self._settle(pending, key, env, message.partition, "fallback", outcome.attempts, node.fallback, None)
            return "fallback"
        if outcome.status == "rejected":  # the step refused on purpose: its message is the reason, no dead letter
            log.info("%s: request %s rejected: %s", node.name, env.request.id, text[:500])
            reason = self.scrub.text(str(error)) if error is not None else text
            await self._end(env, "rejected", f"{node.name}: {reason}", pending)
            await self._settle(pending, key, env, message.partition, "rejected", outcome.attempts, None, None)
            return "rejected"
        log.warning("%s: request %s %s after %d attempt(s): %s", node.name, env.request.id, outcome.status,
                    outcome.attempts, text[:500])
        final: Status = "timeout" if outcome.status == "timeout" else "failed"
        await self._end(env, final, f"{node.name}: {text}", pending)
        if final == "failed":
            await self.outputs.dead_letter(message, self.pipeline, node.name, error or RuntimeError(text),
                                           outcome.attempts, env.request.id)
        await self._settle(pending, key, env, message.partition, final, outcome.attempts, None, None)
        return final

    # -- joins ---------------------------------------------------------------------------------

    async def _arrive(
        self, message: Any, env: Envelope, pending: Pending
    ) -> tuple[Envelope, dict[str, Any], tuple[str, dict[str, Any]]] | None:
        """Record a branch (or a timeout tick); when the join's policy is met return (envelope, join input, buffer).

        The buffer is marked fired by the caller once the join step's outputs are on the broker.
        """
        assert self.tables.joins is not None and self.node.join is not None
        frame = env.frames[-1]
        buffer_key = f"{env.request.request_key()}|{frame.pass_id}"
        buffer = self.tables.joins.get(buffer_key)
        if buffer is not None and buffer["fired"]:
            self.outputs.metrics.messages.labels(*self.labels, "late").inc()
            return None  # the join went ahead without this branch, or this is a re-delivery
        if buffer is None:
            if env.tick:
                return None
            buffer = joins.new_buffer(env)
        base = joins.base_envelope(buffer)
        if self.tables.request_state.get(self._execution_key(base)) is not None:
            # the join step ran and settled, but the worker died before the buffer was marked fired
            _wrote(pending, self.tables.joins.set(buffer_key, {**buffer, "fired": True}, message.partition))
            return None
        decided = buffer.get("decided")
        if decided is None:
            timed_out = env.tick
            if not env.tick:
                buffer = joins.record(buffer, frame, env.route, env.usage)
            decision = joins.decide(buffer, self.node.join, timed_out=timed_out)
            if decision == "wait":
                if len(orjson.dumps(buffer)) > self.outputs.limit:
                    decided = {"status": "failed", "reason": f"{self.node.name}: the gathered branches are over "
                                                                f"CONVEYOR_MAX_MESSAGE_BYTES={self.outputs.limit:,}"}
                else:
                    _wrote(pending, self.tables.joins.set(buffer_key, buffer, message.partition))
                    return None
            else:
                base = joins.base_envelope(buffer)
                deadline_passed = base.deadline is not None and self.clock() >= base.deadline
                if decision == "fail" or (timed_out and deadline_passed):
                    status = "timeout" if timed_out else "failed"
                    decided = {"status": status,
                               "reason": joins.failure_reason(buffer, self.node.name, timed_out, timed_out and deadline_passed)}
        if decided is not None:
            # the decision is kept first, so a re-delivery after a crash repeats it rather than deciding anew
            small = {**buffer, "arrived": {}, "decided": decided}
            _wrote(pending, self.tables.joins.set(buffer_key, small, message.partition))
            await self._end(joins.base_envelope(buffer), decided["status"], decided["reason"], pending)
            await asyncio.gather(*pending)
            pending.clear()
            _wrote(pending, self.tables.joins.set(buffer_key, {**small, "fired": True}, message.partition))
            return None
        return base, joins.join_input(buffer, base.view()), (buffer_key, buffer)

    # -- final results and history ---------------------------------------------------------------

    async def _finish(self, env: Envelope, status: Status, error: str | None) -> Pending:
        """Emit the request's final result, and its cost entry for the ledger; returns their deliveries."""
        state = env.state
        safety = None
        if "verdict" in state:
            try:
                safety = SafetyReport(verdict=state["verdict"], flags=state.get("flags", []))
            except ValidationError:
                safety = None
        citations: list[Citation] = []
        for c in state.get("citations", []) if isinstance(state.get("citations"), list) else []:
            try:
                citations.append(Citation.model_validate(c))
            except ValidationError:
                continue
        answer = state.get("answer") if status == "ok" and isinstance(state.get("answer"), str) else None
        result = Result(
            id=str(env.request.id),
            tenant=env.request.tenant,
            status=status,
            answer=answer or None,
            citations=citations,
            route=env.route,
            intent=state.get("intent") if isinstance(state.get("intent"), str) else None,
            usage=env.usage,
            latency_ms=round((self.clock() - env.published_at) * 1000, 2),
            trace_id=env.trace_id,
            safety=safety,
            error=error,
            output={k: state[k] for k in self.spec.result if k in state},
        )
        entry = {"tenant": env.request.tenant, "request_id": result.id, "pipeline": self.pipeline, "status": status,
                 **env.usage.model_dump()}
        return [
            await self.outputs.result(self.pipeline, result),
            await self.outputs.send(LEDGER, env.request.tenant, orjson.dumps(entry)),
        ]

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

    def _remember_turn(
        self, table: StateTable, key: str, turn: Turn, history: list[Turn], partition: int, pending: Pending
    ) -> None:
        """Add a turn to the session's history: once per request id, in publish order, bounded length."""
        if any(t.request_id == turn.request_id for t in history):
            return
        limit = self.history_turns
        turns = sorted(history + [turn], key=lambda t: (t.asked_at, t.sequence))[-limit:] if limit else []
        _wrote(pending, table.set(key, [t.model_dump(mode="json") for t in turns], partition))
