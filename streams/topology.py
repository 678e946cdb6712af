"""Compile a validated pipeline graph into Faust apps: one app (consumer group, tables) per node.

One app per step (../shared/research/scaling.md): scaling or restarting generation rebalances only
generation's group; the other steps keep running and replay nothing. Besides the graph's nodes
there are two shared components: ``ingress`` (``conveyor.requests`` → the pipeline's entry topic,
re-keyed by session) and ``ledger`` (cost entries → the per-tenant ``cost-ledger`` table).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterator

from steps import STEPS
from steps.base import Step
from streams.app import Settings, create_app
from streams.dispatch import KeyedDispatcher
from streams.errors import ConfigError
from streams.graph import END, REJECT, GraphSpec, validate
from streams.metrics import Metrics
from streams.processor import IngressProcessor, LedgerProcessor, Outputs, StepProcessor, StepTables
from streams.topics import (
    COST_LEDGER,
    DLQ,
    LEDGER,
    REQUEST_STATE,
    REQUESTS,
    RESULTS,
    SESSION_HISTORY,
    TRACES,
    raw_topic,
    step_topic,
    table,
)

__all__ = ["Compiled", "compile", "component_names", "is_input_topic"]

log = logging.getLogger(__name__)
SHARED_OUTPUTS = (RESULTS, DLQ, TRACES, LEDGER)


@dataclass
class Compiled:
    """The apps to run, the steps to warm up, and the tables by name (for ``/state``)."""

    apps: list[Any] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)

    def input_partitions(self) -> Iterator[tuple[Any, Any, Any]]:
        """(app, consumer, partition) for each input partition held now (none while starting or rebalancing)."""
        for app in self.apps:
            consumer = getattr(app, "_consumer", None)
            try:
                tps = list(consumer.assignment()) if consumer is not None else []
            except Exception:  # noqa: BLE001 - consumer not started yet
                tps = []
            for tp in tps:
                if is_input_topic(tp.topic):
                    yield app, consumer, tp

    def assignments(self) -> dict[str, list[str]]:
        """``{app id: ["topic:partition", ...]}``: the input partitions each app holds now."""
        out: dict[str, list[str]] = {app.conf.id: [] for app in self.apps}
        for app, _, tp in self.input_partitions():
            out[app.conf.id].append(f"{tp.topic}:{tp.partition}")
        return {k: sorted(v) for k, v in out.items()}

    def table_dump(self, name: str) -> dict[str, Any] | None:
        """``{component: {key: value}}`` for the partitions of ``name`` this worker holds."""
        holders = self.tables.get(name)
        if holders is None:
            return None
        return {component: {str(k): v for k, v in t.items()} for component, t in holders.items()}


def is_input_topic(topic: str) -> bool:
    """False for Faust's own topics (table changelogs, the assignor's leader topic)."""
    return not topic.endswith("-changelog") and "__assignor" not in topic


def component_names(spec: GraphSpec) -> list[str]:
    return ["ingress", *(n.name for n in spec.nodes), "ledger"]


def _register_agent(app: Any, topic: Any, name: str, handler: Callable[[Any], Awaitable[None]], outputs: Outputs, limit: int) -> None:
    async def agent(stream: Any) -> None:
        acking = stream.noack()
        dispatcher = KeyedDispatcher(limit)
        try:
            async for event in acking.events():
                await dispatcher.submit(event.key, functools.partial(_handle, acking, event, handler, outputs, name))
        finally:
            await dispatcher.drain()

    agent.__name__ = agent.__qualname__ = f"conveyor_{name.replace('-', '_')}"
    app.agent(topic, name=f"conveyor.{name}")(agent)


async def _handle(stream: Any, event: Any, handler: Callable[[Any], Awaitable[None]], outputs: Outputs, name: str) -> None:
    try:
        await handler(event)
    except Exception as exc:  # noqa: BLE001 - a bug or a broker failure: dead-letter it, keep serving
        log.exception("%s: unexpected error at %s[%s]@%s", name, event.message.topic, event.message.partition, event.message.offset)
        try:
            await outputs.dead_letter(event.message, None, name, exc, 1, None)
        except Exception:  # noqa: BLE001 - broker unreachable: leave unacked, it is re-delivered after restart
            log.exception("%s: could not dead-letter the message either; leaving it unacked", name)
            return
    await stream.ack(event)


def _with_startup_declare(app: Any, outputs: Outputs) -> None:
    async def declare_topics() -> None:
        await outputs.declare()

    app.task(declare_topics, on_leader=False)


def compile(
    spec: GraphSpec,
    settings: Settings,
    metrics: Metrics,
    *,
    embedded: bool,
    worker: str,
    only: tuple[str, ...] = (),
    pipelines: dict[str, GraphSpec] | None = None,
    registry: dict[str, type] = STEPS,
) -> Compiled:
    """Faust apps for the components of ``spec`` named in ``only`` (all when empty)."""
    validate(spec, registry)
    known = component_names(spec)
    unknown = sorted(set(only) - set(known))
    if unknown:
        raise ConfigError(f"--steps names {unknown}, not components of pipeline {spec.name!r}; choose from {known}")
    wanted = set(only) or set(known)
    compiled = Compiled()

    def new_app(app_id: str) -> tuple[Any, Outputs]:
        app = create_app(settings, app_id, embedded=embedded)
        outputs = Outputs(app, settings, metrics, worker)
        for name in SHARED_OUTPUTS:
            outputs.topic(name)
        _with_startup_declare(app, outputs)
        compiled.apps.append(app)
        return app, outputs

    if "ingress" in wanted:
        app, outputs = new_app("conveyor-ingress")
        all_pipelines = pipelines or {spec.name: spec}
        for p in all_pipelines.values():
            outputs.topic(step_topic(p.name, p.entry))
        ingress = IngressProcessor(outputs, all_pipelines, settings)
        metrics.declare("-", "ingress")
        # keyed by the client's key: a client that keys by session keeps its order; unkeyed requests stay in order
        limit = settings.concurrency_for("ingress")
        _register_agent(app, raw_topic(app, REQUESTS, settings.partitions), "ingress", ingress.process, outputs, limit)

    for node in spec.nodes:
        if node.name not in wanted:
            continue
        app, outputs = new_app(f"conveyor-{spec.name}-{node.name}")
        step: Step = registry[node.step](**node.config)
        tables = StepTables(request_state=table(app, REQUEST_STATE, settings.partitions))
        if getattr(step, "uses_history", False):
            tables.session_history = table(app, SESSION_HISTORY, settings.partitions)
            compiled.tables.setdefault(SESSION_HISTORY, {})[node.name] = tables.session_history
        compiled.tables.setdefault(REQUEST_STATE, {})[node.name] = tables.request_state
        for target in node.targets():
            if target not in (END, REJECT):
                outputs.topic(step_topic(spec.name, target))
        processor = StepProcessor(spec, node, step, outputs, tables)
        limit = node.policy.concurrency or settings.concurrency_for(node.name)
        topic = raw_topic(app, step_topic(spec.name, node.name), settings.partitions)
        _register_agent(app, topic, node.name, processor.process, outputs, limit)
        compiled.steps.append(step)

    if "ledger" in wanted:
        app, outputs = new_app("conveyor-ledger")
        ledger_table = table(app, COST_LEDGER, settings.partitions)
        compiled.tables[COST_LEDGER] = {"ledger": ledger_table}
        metrics.declare("-", "ledger")
        # keyed by tenant: each tenant's read-modify-write runs in order, tenants in parallel
        ledger = LedgerProcessor(outputs, ledger_table)
        limit = settings.concurrency_for("ledger")
        _register_agent(app, raw_topic(app, LEDGER, settings.partitions), "ledger", ledger.process, outputs, limit)
    return compiled
