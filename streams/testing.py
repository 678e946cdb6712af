"""Run a pipeline in-process, without a broker: the same processors, routing, joins, loops, fallbacks, policies.

::

    from streams.testing import run
    results = run("flow.yaml", [{"text": "hello world"}])
    assert results[0].status == "ok" and results[0].output["words"] == 2

Messages go through an in-memory queue in the order they are produced, tables are dicts with
the same record format as the worker's, and a join whose timeout passes with nothing left to
process fires at once (the clock jumps to its deadline), so a test of a join with a slow or
missing branch takes milliseconds. Dead letters and spans are kept on the returned
:class:`Run` (``run_pipeline``) for tests that look at them.

Approvals: ``approvals={"<request id>": "approve"}`` (or ``"reject"``, or
``{"decision": "approve", "by": "alice", "comment": "ok"}``) answers a request once it is parked, through
``conveyor.approvals`` and the same router a worker runs; a parked request with no entry expires (the
clock jumps to its ``timeout_s``). The ``pending_approval`` notices are on ``Run.pending``.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import orjson

from streams import joins
from streams.app import Settings
from streams.approvals import ApprovalRouter, expiry_message, waiting
from streams.budget import check_tiers, gate_for
from streams.envelope import DeadLetter, Result, encode
from streams.graph import GraphSpec, analyse
from streams.ingress import IngressProcessor
from streams.ledger import LedgerProcessor
from streams.metrics import Metrics
from streams.outputs import Outputs
from streams.processor import StepProcessor, StepTables
from streams.spend import SpendView
from streams.state import MemoryTable
from streams.topics import (
    APPROVAL_DECISIONS,
    APPROVAL_REQUESTS,
    APPROVALS,
    DLQ,
    LEDGER,
    REQUESTS,
    RESULTS,
    TRACES,
    step_topic,
)

__all__ = ["Run", "run", "run_pipeline"]


@dataclass
class Message:
    topic: str
    key: bytes | None
    value: bytes
    offset: int
    timestamp: float
    partition: int = 0


@dataclass
class Run:
    """Everything one in-process run produced."""

    results: list[Result]
    duplicates: list[Result] = field(default_factory=list)  # further results for a request (should stay empty)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    spans: list[dict[str, Any]] = field(default_factory=list)
    messages: int = 0
    pending: list[Result] = field(default_factory=list)  # pending_approval notices, in the order sent
    metrics: Metrics | None = None  # the series the run's processors recorded (``metrics.exposition()``)


class _Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


class _Queue:
    """The in-memory broker: a FIFO of produced records, plus everything sent to the shared topics."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.pending: deque[Message] = deque()
        self.offsets: dict[str, int] = {}
        self.sent: dict[str, list[bytes]] = {}

    def topic(self, name: str) -> None:
        return None

    async def declare(self) -> None:
        return None

    async def send(self, name: str, key: bytes | None, value: bytes) -> asyncio.Future[Any]:
        offset = self.offsets.get(name, 0)
        self.offsets[name] = offset + 1
        self.pending.append(Message(name, key, value, offset, self.clock()))
        self.sent.setdefault(name, []).append(value)
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class _Served:
    def __init__(self, specs: dict[str, GraphSpec]) -> None:
        self.specs = specs

    def entry_for(self, pipeline: str) -> str | None:
        spec = self.specs.get(pipeline)
        return spec.entry if spec is not None else None

    def served(self) -> list[str]:
        return sorted(self.specs)

    def deadline_for(self, pipeline: str) -> int | None:
        spec = self.specs.get(pipeline)
        return spec.deadline_ms if spec is not None else None


def _load(pipeline: GraphSpec | str | Path) -> GraphSpec:
    if isinstance(pipeline, GraphSpec):
        return pipeline
    builder_spec = getattr(pipeline, "spec", None)
    if callable(builder_spec):  # a streams.Pipeline builder
        return builder_spec()  # type: ignore[no-any-return]
    from streams.pipeline_file import load_pipeline

    return load_pipeline(pipeline)


Answer = str | dict[str, Any]


async def _run(spec: GraphSpec, requests: list[dict[str, Any]], settings: Settings, deps: Any,
               build_step: Callable[[str, dict[str, Any]], Any] | None, max_messages: int,
               answers: dict[str, Answer], spend: SpendView | None = None) -> Run:
    from streams.topology import default_build_step

    build_step = build_step or default_build_step
    clock = _Clock()
    queue = _Queue(clock)
    metrics = Metrics()
    outputs = Outputs(queue, settings, metrics, worker="testing")
    info = analyse(spec)
    ingress = IngressProcessor(outputs, _Served({spec.name: spec}), settings)
    ledger = LedgerProcessor(outputs, {}, MemoryTable(clock), durable=False)
    check_tiers(spec, settings.tiers)
    spend = spend if spend is not None else SpendView()  # fed by the in-process ledger below
    budget = gate_for(settings, spend, clock)
    processors: dict[str, StepProcessor] = {}
    join_tables: dict[str, MemoryTable] = {}
    parked: dict[str, MemoryTable] = {}
    router = ApprovalRouter(outputs, MemoryTable(clock), clock=clock)
    warmed: dict[int, Any] = {}
    for node in spec.nodes:
        step = build_step(node.step, node.config)
        if id(step) not in warmed:
            warmed[id(step)] = step
            warm_up = getattr(step, "warm_up", None)
            if warm_up is not None:
                await warm_up(deps)
        tables = StepTables(request_state=MemoryTable(clock))
        if getattr(step, "uses_history", False):
            tables.session_history = MemoryTable(clock)
        if node.join is not None:
            tables.joins = join_tables[node.name] = MemoryTable(clock)
        if getattr(step, "parks", False):
            tables.parked = parked[node.name] = MemoryTable(clock)
        processors[step_topic(spec.name, node.name)] = StepProcessor(
            spec, info, node, step, outputs, tables, settings.history_turns, clock=clock, budget=budget)
    for request in requests:
        await queue.send(REQUESTS, None, orjson.dumps(request))
    handled = 0
    answered: set[str] = set()
    while True:
        while queue.pending:
            message = queue.pending.popleft()
            handled += 1
            if handled > max_messages:
                raise RuntimeError(f"more than {max_messages} messages: does a loop lack max_visits?")
            if message.topic == REQUESTS:
                await ingress.process(message)
            elif message.topic == LEDGER:
                await ledger.process(message)
                spend.apply(message.value, message.timestamp)
            elif message.topic in (APPROVALS, APPROVAL_REQUESTS, APPROVAL_DECISIONS):
                await router.process(message)
            elif message.topic in processors:
                await processors[message.topic].process(message)
        if _answer_parked(parked, answers, answered, queue):
            continue
        if not _next_timer(spec, join_tables, parked, queue, clock):
            break
    finals = [v for v in queue.sent.get(RESULTS, []) if b'"status":"pending_approval"' not in v]
    pending = [Result.model_validate_json(v) for v in queue.sent.get(RESULTS, []) if b'"status":"pending_approval"' in v]
    results, duplicates = _final_results(finals)
    letters = [DeadLetter.model_validate_json(v) for v in queue.sent.get(DLQ, [])]
    spans = [orjson.loads(v) for v in queue.sent.get(TRACES, [])]
    return Run(results=results, duplicates=duplicates, dead_letters=letters, spans=spans, messages=handled,
               pending=pending, metrics=metrics)


def _answer_parked(parked: dict[str, MemoryTable], answers: dict[str, Answer], answered: set[str], queue: _Queue) -> bool:
    """Publish the given decision of every newly parked request to ``conveyor.approvals``, as a person would."""
    sent = False
    for table in parked.values():
        for key, entry, _ in table.values():
            if entry.get("done") or key in answered:
                continue
            rid = str(entry["env"]["request"]["id"])
            if rid not in answers:
                continue
            answered.add(key)
            answer = answers[rid]
            body = {"decision": answer} if isinstance(answer, str) else dict(answer)
            body.setdefault("by", "streams.testing")
            body.update(id=rid, tenant=entry["env"]["request"].get("tenant", "default"))
            queue.pending.append(Message(APPROVALS, rid.encode(), orjson.dumps(body), 0, queue.clock()))
            sent = True
    return sent


def _next_timer(spec: GraphSpec, joins: dict[str, MemoryTable], parked: dict[str, MemoryTable], queue: _Queue,
                clock: _Clock) -> bool:
    """Nothing left to process: jump the clock to the earliest join deadline or approval expiry, and fire it."""
    timers: list[tuple[float, str, str, Any]] = [
        (buf["deadline"], "join", node, buf) for node, t in joins.items() for _, buf, _ in t.values()
        if not buf["fired"] and buf.get("deadline") is not None]
    timers += [(float(entry["expires_at"]), "approval", node, (key, entry)) for node, t in parked.items()
               for key, entry, _ in t.values() if waiting(entry, clock()) and not entry.get("done")]
    if not timers:
        return False
    at, kind, node, item = min(timers, key=lambda w: w[0])
    clock.offset += max(0.0, at - clock() + 0.001)
    if kind == "approval":
        key, entry = item
        queue.pending.append(Message(step_topic(spec.name, node), None, expiry_message(key, clock()), 0, clock()))
        return True
    queue.pending.append(Message(step_topic(spec.name, node), None, encode(joins.tick_envelope(item)), 0, clock()))
    return True


def _final_results(values: Iterable[bytes]) -> tuple[list[Result], list[Result]]:
    seen: dict[tuple[str | None, str], Result] = {}
    duplicates: list[Result] = []
    for value in values:
        result = Result.model_validate_json(value)
        if (result.tenant, result.id) in seen:
            duplicates.append(result)
        else:
            seen[(result.tenant, result.id)] = result
    return list(seen.values()), duplicates


def run_pipeline(
    pipeline: GraphSpec | str | Path, requests: Iterable[dict[str, Any] | str], *, settings: Settings | None = None,
    deps: Any = None, build_step: Callable[[str, dict[str, Any]], Any] | None = None, max_messages: int = 100_000,
    approvals: dict[str, Answer] | None = None, spend: SpendView | None = None,
) -> Run:
    """Run ``requests`` through ``pipeline`` in-process; returns results (in request order), dead letters and spans.

    ``approvals`` answers parked requests by id (``"approve"``, ``"reject"`` or a decision dict); the rest expire.
    ``spend`` is the tenants' spend that budgets (``settings.budgets``) are checked against; fill it
    with ``SpendView.apply`` to start from spend already made today. The run's own ledger entries feed it.
    """
    spec = _load(pipeline)
    settings = settings or Settings(broker="localhost:9092")
    batch = []
    for i, r in enumerate(requests):
        request = {"text": r} if isinstance(r, str) else dict(r)
        request.setdefault("id", f"test-{i}")
        request.setdefault("pipeline", spec.name)
        batch.append(request)
    if deps is None:
        from steps.deps import Deps, ResourceConfig

        deps = Deps(ResourceConfig(index_dir=settings.index_dir, corpus_path=settings.corpus, prices=dict(settings.prices)))
    outcome = asyncio.run(_run(spec, batch, settings, deps, build_step, max_messages, dict(approvals or {}), spend))
    order = {(r.get("tenant", "default"), r["id"]): i for i, r in enumerate(batch)}
    outcome.results.sort(key=lambda res: order.get((res.tenant or "default", res.id), len(order)))
    return outcome


def run(pipeline: GraphSpec | str | Path, requests: Iterable[dict[str, Any] | str], **kwargs: Any) -> list[Result]:
    """One final result per request, in request order (DESIGN.md §5)."""
    return run_pipeline(pipeline, requests, **kwargs).results
