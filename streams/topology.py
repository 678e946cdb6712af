"""Compile a validated pipeline graph into Faust apps: one app (consumer group, tables) per node.

One app per step (../shared/research/scaling.md): scaling or restarting generation rebalances only
generation's group; the other steps keep running and replay nothing. Besides the graph's nodes
there are shared components: ``ingress`` (``conveyor.requests`` → the pipeline's entry topic,
re-keyed by session), ``ledger`` (cost entries → the per-tenant ``cost-ledger`` table) and, when a
pipeline has an approval node, ``approvals`` (decisions → the parked requests, ``streams.approvals``).
Every table of per-request or per-session state expires (``streams.state``), swept on a timer.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from streams import approvals, faust_adapter, joins
from streams.app import Settings, create_app
from streams.budget import BudgetGate, check_tiers, gate_for
from streams.envelope import encode
from streams.errors import ConfigError
from streams.graph import TERMINALS, GraphSpec, analyse
from streams.ingress import Directory, IngressProcessor
from streams.ledger import LedgerProcessor
from streams.metrics import Metrics
from streams.outputs import Outputs
from streams.processor import StepProcessor, StepTables
from streams.spend import TENANT_SPEND, LedgerFollower
from streams.state import ExpiringTable
from streams.topics import (
    APPROVAL_DECISIONS,
    APPROVAL_INDEX,
    APPROVAL_REQUESTS,
    APPROVALS,
    COST_LEDGER,
    PARKED_APPROVALS,
    DLQ,
    JOIN_BUFFER,
    LEDGER,
    LEDGER_SEEN,
    REQUEST_STATE,
    REQUESTS,
    RESULTS,
    SESSION_HISTORY,
    TRACES,
    raw_topic,
    raw_topics,
    step_topic,
    table,
)

__all__ = ["Compiled", "compile", "component_names", "is_input_topic"]

log = logging.getLogger(__name__)
SHARED_OUTPUTS = (RESULTS, DLQ, TRACES, LEDGER)
is_input_topic = faust_adapter.is_input_topic


@dataclass
class Compiled:
    """The apps to run, the steps to warm up, and the tables by name (for ``/state`` and the size gauge)."""

    apps: list[Any] = field(default_factory=list)
    steps: list[Any] = field(default_factory=list)
    tables: dict[str, dict[str, ExpiringTable | Any]] = field(default_factory=dict)

    def input_partitions(self) -> Iterator[tuple[Any, Any]]:
        """(app, partition) for each input partition held now (none while starting or rebalancing)."""
        for app in self.apps:
            for tp in faust_adapter.input_partitions(app):
                yield app, tp

    def assignments(self) -> dict[str, list[str]]:
        """``{app id: ["topic:partition", ...]}``: the input partitions each app holds now."""
        out: dict[str, list[str]] = {app.conf.id: [] for app in self.apps}
        for app, tp in self.input_partitions():
            out[app.conf.id].append(f"{tp.topic}:{tp.partition}")
        return {k: sorted(v) for k, v in out.items()}

    def table_dump(self, name: str) -> dict[str, Any] | None:
        """``{component: {key: value}}`` for the partitions of ``name`` this worker holds."""
        holders = self.tables.get(name)
        if holders is None:
            return None
        out: dict[str, Any] = {}
        for component, t in holders.items():
            raw = t.table if isinstance(t, ExpiringTable) else t
            out[component] = {str(k): v for k, v in faust_adapter.table_items(raw)}
        return out

    def table_sizes(self) -> Iterator[tuple[str, str, int]]:
        """(table, component, local keys) for the size gauge."""
        for name, holders in self.tables.items():
            for component, t in holders.items():
                raw = t.table if isinstance(t, ExpiringTable) else t
                yield name, component, len(raw.data)


def _parks(ref: str) -> bool:
    from steps.registry import resolve

    return bool(getattr(resolve(ref).target, "parks", False))


def component_names(specs: GraphSpec | list[GraphSpec]) -> list[str]:
    specs = specs if isinstance(specs, list) else [specs]
    nodes = [n.name for spec in specs for n in spec.nodes]
    shared = ["approvals"] if any(_parks(n.step) for spec in specs for n in spec.nodes) else []
    return ["ingress", *dict.fromkeys(nodes), "ledger", *shared]


def _with_startup_declare(app: Any, outputs: Outputs) -> None:
    async def declare_topics() -> None:
        await outputs.declare()

    app.task(declare_topics, on_leader=False)


def _with_sweeps(app: Any, tables: list[tuple[str, ExpiringTable]], interval_s: float) -> None:
    """A timer that expires old entries of ``tables`` (each worker sweeps the partitions it owns)."""

    async def sweep() -> None:
        for name, t in tables:
            try:
                report = t.sweep()
            except Exception:  # noqa: BLE001 - a failed sweep is tried again next interval; it must not stop the app
                log.exception("%s %s: sweep failed", app.conf.id, name)
                continue
            if report.expired or report.forgotten:
                log.info("%s %s: %d expired, %d forgotten, %d kept", app.conf.id, name, report.expired, report.forgotten, report.kept)

    app.timer(interval_s, on_leader=False, name=f"{app.conf.id}-sweep")(sweep)


Due = Callable[[str, Any, float], "tuple[str, bytes] | None"]  # (key, entry, now) -> (session key, message) when due


def _with_timer(app: Any, outputs: Outputs, topic: str, table: ExpiringTable, interval_s: float, due: Due,
                what: str) -> None:
    """Send each due entry of ``table`` its message on ``topic`` (the node's own), once, even when nothing arrives.

    The message is keyed by the session, so it reaches the partition (and the worker) that owns the
    entry and is handled in order with the node's other messages; the node ignores one for an entry
    that has moved on (a join that fired, an approval decided), so sending again after a restart is
    harmless. A failed send is tried again on the next tick.
    """
    sent: set[str] = set()

    async def tick() -> None:
        now = time.time()
        for key, entry, _ in table.values():
            if key in sent:
                continue
            try:
                message = due(key, entry, now)
                if message is None:
                    continue
                await outputs.send_and_wait(topic, *message)
            except Exception:  # noqa: BLE001 - tried again on the next tick; it must not stop the app
                log.exception("%s: %s for %s failed", topic, what, key)
                continue
            sent.add(key)
        if len(sent) > 100_000:
            sent.clear()

    app.timer(interval_s, on_leader=False, name=f"{app.conf.id}-{what.replace(' ', '-')}")(tick)


def _join_tick_due(key: str, buffer: Any, now: float) -> tuple[str, bytes] | None:
    """A join whose timeout passed: a tick, so that it fires even when no branch arrives."""
    if buffer.get("fired") or buffer.get("deadline") is None or buffer["deadline"] > now:
        return None
    env = joins.tick_envelope(buffer)
    return env.request.session_key(), encode(env)


def _approval_expiry_due(key: str, entry: Any, now: float) -> tuple[str, bytes] | None:
    """A parked approval whose ``timeout_s`` passed: an ``expired`` resume."""
    if entry.get("done") or float(entry.get("expires_at", now + 1)) > now:
        return None
    return str(entry["session_key"]), approvals.expiry_message(key, now)


def _waiting(value: Any, now: float) -> bool:
    """A join buffer must not expire while its join can still fire."""
    if not isinstance(value, dict) or value.get("fired"):
        return False
    deadline = value.get("deadline")
    return deadline is None or now < float(deadline) + 60.0


class _Budgets:
    """The worker's budget gate; its spend view follows ``conveyor.ledger`` once a gated node needs it."""

    def __init__(self, settings: Settings, compiled: Compiled) -> None:
        self.compiled = compiled
        self.follower = LedgerFollower(settings.bootstrap_servers(), settings.client_kwargs()) if settings.budgets else None
        self.gate = gate_for(settings, self.follower.view if self.follower is not None else None)
        self.started = False
        self.nodes = 0

    def gate_for_node(self, app: Any, node: Any, step: Any) -> BudgetGate:
        self.nodes += 1
        if self.follower is not None and not self.started and self.gate.applies(node.tier, step):
            self.started = True  # one view per process, run by the first app that has a gated node
            app.task(self.follower.run, on_leader=False)
            self.compiled.tables[TENANT_SPEND] = {"budget": self.follower.view}
        return self.gate

    def check(self) -> None:
        if self.follower is not None and self.nodes and not self.started:
            log.warning("CONVEYOR_BUDGETS is set, but no node this worker runs has tier: or a step with "
                        "calls_model = True: budgets are enforced only before such nodes")


def compile(
    specs: GraphSpec | list[GraphSpec],
    settings: Settings,
    metrics: Metrics,
    *,
    embedded: bool,
    worker: str,
    directory: Directory,
    only: tuple[str, ...] = (),
    build_step: Any = None,
) -> Compiled:
    """Faust apps for the components of the pipelines ``specs`` named in ``only`` (all when empty)."""
    specs = specs if isinstance(specs, list) else [specs]
    build_step = build_step or default_build_step
    known = component_names(specs)
    unknown = sorted(set(only) - set(known))
    if unknown:
        names = ", ".join(repr(s.name) for s in specs)
        raise ConfigError(f"--steps names {unknown}, not components of pipeline {names}; choose from {known}")
    wanted = set(only) or set(known)
    compiled = Compiled()
    warmed: dict[int, Any] = {}
    for spec in specs:  # tier names against CONVEYOR_TIERS: a load error, before any group is joined
        check_tiers(spec, settings.tiers)
    budgets = _Budgets(settings, compiled)

    def new_app(app_id: str) -> tuple[Any, Outputs]:
        app = create_app(settings, app_id, embedded=embedded)
        outputs = Outputs(faust_adapter.FaustProducer(app, settings.partitions), settings, metrics, worker)
        for name in SHARED_OUTPUTS:
            outputs.topic(name)
        _with_startup_declare(app, outputs)
        compiled.apps.append(app)
        return app, outputs

    def expiring(app: Any, name: str, component: str, ttl_s: float, keep: Any = None) -> ExpiringTable:
        t = ExpiringTable(table(app, name, settings.partitions), app, ttl_s, keep=keep)
        compiled.tables.setdefault(name, {})[component] = t
        return t

    def agent(app: Any, outputs: Outputs, topic_name: str, name: str, handler: Any, limit: int, pipeline: str | None,
              processor: StepProcessor | None = None) -> None:
        async def last_resort(message: Any, exc: BaseException) -> None:
            await outputs.dead_letter(message, pipeline, name, exc, 1, None)
            if processor is not None:
                await processor.unexpected(message, exc)

        topic = raw_topic(app, topic_name, settings.partitions)
        faust_adapter.register_agent(app, topic, name, handler, last_resort, limit)

    if "ingress" in wanted:
        app, outputs = new_app("conveyor-ingress")
        for spec in specs:
            outputs.topic(step_topic(spec.name, spec.entry))
        ingress = IngressProcessor(outputs, directory, settings)
        metrics.declare("-", "ingress")
        # keyed by the client's key: a client that keys by session keeps its order; unkeyed requests stay in order
        agent(app, outputs, REQUESTS, "ingress", ingress.process, settings.concurrency_for("ingress"), None)

    for spec in specs:
        info = analyse(spec)
        for node in spec.nodes:
            if node.name not in wanted:
                continue
            component = node.name if len(specs) == 1 else f"{spec.name}.{node.name}"
            app, outputs = new_app(f"conveyor-{spec.name}-{node.name}")
            step = build_step(node.step, node.config)
            warmed.setdefault(id(step), step)
            swept = [(REQUEST_STATE, expiring(app, REQUEST_STATE, component, settings.state_ttl_s))]
            tables = StepTables(request_state=swept[0][1])
            if getattr(step, "uses_history", False):
                tables.session_history = expiring(app, SESSION_HISTORY, component, settings.session_ttl_s)
                swept.append((SESSION_HISTORY, tables.session_history))
            if node.join is not None:
                tables.joins = expiring(app, JOIN_BUFFER, component, settings.state_ttl_s, keep=_waiting)
                swept.append((JOIN_BUFFER, tables.joins))
                _with_timer(app, outputs, step_topic(spec.name, node.name), tables.joins, settings.join_tick_s,
                            _join_tick_due, "join ticks")
            if getattr(step, "parks", False):
                tables.parked = expiring(app, PARKED_APPROVALS, component, settings.state_ttl_s,
                                         keep=approvals.undecided)
                swept.append((PARKED_APPROVALS, tables.parked))
                _with_timer(app, outputs, step_topic(spec.name, node.name), tables.parked, settings.join_tick_s,
                            _approval_expiry_due, "approval expiry")
                outputs.topic(APPROVAL_REQUESTS)
            # where it forwards, the join its branches end at (a branch's failure goes there), its own topic (ticks)
            targets = {*node.targets(), node.name, *([info.join_of[node.name]] if node.name in info.join_of else [])}
            for target in targets - set(TERMINALS):
                outputs.topic(step_topic(spec.name, target))
            processor = StepProcessor(spec, info, node, step, outputs, tables, settings.history_turns,
                                      budget=budgets.gate_for_node(app, node, step))
            limit = node.policy.concurrency or settings.concurrency_for(node.name)
            agent(app, outputs, step_topic(spec.name, node.name), node.name, processor.process, limit, spec.name, processor)
            _with_sweeps(app, swept, settings.sweep_interval_s)
    compiled.steps = list(warmed.values())
    budgets.check()

    if "ledger" in wanted:
        app, outputs = new_app("conveyor-ledger")
        ledger_table = table(app, COST_LEDGER, settings.partitions)
        compiled.tables[COST_LEDGER] = {"ledger": ledger_table}
        seen = expiring(app, LEDGER_SEEN, "ledger", settings.state_ttl_s)
        metrics.declare("-", "ledger")
        # keyed by tenant: each tenant's read-modify-write runs in order, tenants in parallel
        ledger = LedgerProcessor(outputs, ledger_table, seen)
        agent(app, outputs, LEDGER, "ledger", ledger.process, settings.concurrency_for("ledger"), None)
        _with_sweeps(app, [(LEDGER_SEEN, seen)], settings.sweep_interval_s)

    if "approvals" in wanted:
        app, outputs = new_app("conveyor-approvals")
        index = expiring(app, APPROVAL_INDEX, "approvals", settings.state_ttl_s, keep=approvals.waiting)
        outputs.topic(APPROVAL_DECISIONS)
        for spec in specs:
            for node in spec.nodes:
                if _parks(node.step):
                    outputs.topic(step_topic(spec.name, node.name))
        metrics.declare("-", "approvals")
        router = approvals.ApprovalRouter(outputs, index)

        async def last_resort(message: Any, exc: BaseException) -> None:
            await outputs.dead_letter(message, None, "approvals", exc, 1, None)

        # one agent over the three topics: partition p of each is on one worker, with the index's partition p
        topic = raw_topics(app, [APPROVALS, APPROVAL_REQUESTS, APPROVAL_DECISIONS], settings.partitions)
        faust_adapter.register_agent(app, topic, "approvals", router.process, last_resort,
                                     settings.concurrency_for("approvals"))
        _with_sweeps(app, [(APPROVAL_INDEX, index)], settings.sweep_interval_s)
    return compiled


def default_build_step(ref: str, config: dict[str, Any]) -> Any:
    """A runner of the step ``ref`` names (registered name or ``module:attribute``), its config checked."""
    from steps.registry import resolve

    return resolve(ref).build(config)
