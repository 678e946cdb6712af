"""Pipeline specs (DESIGN.md §5): nodes, edges, fan-out, joins, maps, bounded loops, fallbacks. No Faust here.

A :class:`GraphSpec` is plain data (pydantic): written in YAML/JSON (``streams.pipeline_file``) or
built in Python (``streams.builder.Pipeline``). :func:`validate` checks it against the steps it
names and raises :class:`~streams.errors.GraphError` naming the file, the node and the field.
:func:`analyse` computes what the runtime needs: for every fan-out, the join its branches meet at.

Edges of a node: ``next`` (one node, or a list = parallel fan-out), ``routes`` (the step's
``Output.route`` value → a node), ``map`` (one branch per item of a list field), ``fallback``
(taken when retries are exhausted) and ``on_limit`` (taken on the visit after ``max_visits``).
Terminal targets: ``$end`` (status ok), ``$reject``, ``$block``, ``$fail``.

A node that calls a model may pick its model tier with ``tier:`` (a :class:`~streams.budget.TierRule`:
``{default: strong, cheap_when: {intent: [smalltalk]}}``); its shape is checked here, its tier names
against ``CONVEYOR_TIERS`` where the settings are known (:func:`streams.budget.check_tiers`).
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field

from streams.budget import TierRule
from streams.errors import GraphError

__all__ = [
    "BLOCK",
    "END",
    "FAIL",
    "REJECT",
    "TERMINALS",
    "AtLeast",
    "GraphInfo",
    "GraphSpec",
    "Join",
    "MapSpec",
    "Node",
    "Policy",
    "analyse",
    "validate",
]

END, REJECT, BLOCK, FAIL = "$end", "$reject", "$block", "$fail"
TERMINALS: dict[str, str] = {END: "ok", REJECT: "rejected", BLOCK: "blocked", FAIL: "failed"}
RESERVED = ("ingress", "ledger")
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,48}$")


class Policy(BaseModel):
    """Timeout per attempt, retries with exponential backoff and jitter, and in-flight concurrency."""

    model_config = ConfigDict(extra="forbid")

    timeout_s: float = Field(default=30.0, gt=0)
    retries: int = Field(default=2, ge=0, le=20)
    backoff_s: float = Field(default=0.2, ge=0)
    backoff_max_s: float = Field(default=5.0, ge=0)
    jitter: float = Field(default=0.2, ge=0, le=1)
    concurrency: int | None = Field(default=None, ge=1)


class AtLeast(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at_least: int = Field(ge=1)


class Join(BaseModel):
    """Wait for the branches of a fan-out: ``all``, ``any`` or ``{at_least: N}``, for at most ``timeout_s``."""

    model_config = ConfigDict(extra="forbid")

    policy: Literal["all", "any"] | AtLeast = "all"
    timeout_s: float | None = Field(default=None, gt=0)

    def needed(self, expected: int) -> int:
        if self.policy == "all":
            return expected
        if self.policy == "any":
            return min(expected, 1)
        return min(expected, self.policy.at_least)


class MapSpec(BaseModel):
    """Dynamic fan-out: one branch to node ``to`` per item of the output's list field ``over``."""

    model_config = ConfigDict(extra="forbid")

    over: str
    to: str


class Node(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    step: str
    config: dict[str, Any] = Field(default_factory=dict)
    next: str | list[str] | None = None
    routes: dict[str, str] | None = None
    map: MapSpec | None = None
    join: Join | None = None
    fallback: str | None = None
    max_visits: int | None = Field(default=None, ge=1)
    on_limit: str = FAIL
    policy: Policy = Field(default_factory=Policy)
    tier: TierRule | None = None  # the model tier, chosen over the state before the step runs

    @property
    def fans_out(self) -> bool:
        return isinstance(self.next, list) or self.map is not None

    def branches(self) -> list[str]:
        """Start nodes of the branches this node fans out to (empty when it does not)."""
        if isinstance(self.next, list):
            return list(self.next)
        return [self.map.to] if self.map is not None else []

    def edges(self) -> list[tuple[str, str]]:
        """(field, target) for every edge out of this node."""
        out: list[tuple[str, str]] = []
        if isinstance(self.next, list):
            out += [("next", t) for t in self.next]
        elif self.next is not None:
            out.append(("next", self.next))
        if self.routes is not None:
            out += [(f"routes.{k}", v) for k, v in self.routes.items()]
        if self.map is not None:
            out.append(("map.to", self.map.to))
        if self.fallback is not None:
            out.append(("fallback", self.fallback))
        if self.max_visits is not None:
            out.append(("on_limit", self.on_limit))
        if self.next is None and self.routes is None and self.map is None:
            out.append(("next", END))
        return out

    def targets(self) -> list[str]:
        return [t for _, t in self.edges()]

    def flow_targets(self) -> list[str]:
        """Where a successful run goes (not fallback/on_limit)."""
        return [t for f, t in self.edges() if f not in ("fallback", "on_limit")]


class GraphSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    entry: str
    nodes: list[Node]
    result: list[str] = Field(default_factory=list)
    deadline_ms: int | None = Field(default=None, gt=0)  # for its requests without their own deadline_ms

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise GraphError(f"pipeline {self.name!r} has no node {name!r}; nodes: {[n.name for n in self.nodes]}")

    def to_dict(self) -> dict[str, Any]:
        """The same structure as a pipeline file (defaults left out)."""
        return self.model_dump(mode="json", exclude_defaults=True)


@dataclass
class GraphInfo:
    """What the runtime needs beyond the spec: the join each fan-out's branches meet at."""

    join_of: dict[str, str] = field(default_factory=dict)  # fan-out node -> join node
    fanouts_of: dict[str, list[str]] = field(default_factory=dict)  # join node -> fan-out nodes


class _Where:
    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, node: str | None, fld: str | None, message: str) -> GraphError:
        parts = [self.source]
        if node is not None:
            parts.append(f"node {node!r}")
        if fld is not None:
            parts.append(f"field {fld}")
        return GraphError(f"{', '.join(parts)}: {message}")


def route_values(output: type | None) -> list[str] | None:
    """The Literal values of an Output model's ``route`` field, if it has one."""
    fields = getattr(output, "model_fields", {})
    route = fields.get("route")
    if route is None:
        return None
    return [str(v) for v in typing.get_args(route.annotation)]


def _list_field(output: type | None, name: str) -> bool:
    fields = getattr(output, "model_fields", {})
    f = fields.get(name)
    if f is None:
        return False
    origin = typing.get_origin(f.annotation)
    return origin in (list, tuple) or f.annotation in (list, tuple)


StepResolver = Callable[[str, dict[str, Any]], Any]  # (ref, config) -> object with .Output; raises on error


def validate(spec: GraphSpec, resolve: StepResolver, source: str | None = None) -> GraphSpec:
    """Check names, steps and their config, edges, routes, fan-outs and joins, maps and loops; return ``spec``."""
    w = _Where(source or f"pipeline {spec.name!r}")
    if not _NAME.match(spec.name):
        raise w.error(None, "name", f"{spec.name!r} must match {_NAME.pattern} (it becomes part of topic names)")
    names = [n.name for n in spec.nodes]
    if not names:
        raise w.error(None, "nodes", "is empty; add at least one node")
    outputs: dict[str, Any] = {}
    parks: set[str] = set()
    for node in spec.nodes:
        if not _NAME.match(node.name) or node.name in RESERVED:
            raise w.error(node.name, "name", f"must match {_NAME.pattern} and not be one of {list(RESERVED)}")
        if names.count(node.name) > 1:
            raise w.error(node.name, "name", "is used by more than one node")
        try:
            resolved = resolve(node.step, node.config)
            outputs[node.name] = getattr(resolved, "Output", None)
            if getattr(getattr(resolved, "target", None), "parks", False):
                parks.add(node.name)
        except Exception as exc:  # noqa: BLE001 - unknown step, import error, bad config: named by the resolver
            fld = "config" if "config" in type(exc).__name__.lower() else "step"
            raise w.error(node.name, fld, str(exc)) from None
    if spec.entry not in names:
        raise w.error(None, "entry", f"{spec.entry!r} is not a node; nodes: {names}")
    for node in spec.nodes:
        _check_node(w, node, names, outputs[node.name])
    if spec.node(spec.entry).join is not None:
        raise w.error(spec.entry, "join", "the entry node cannot be a join (nothing fans out before it)")
    _check_loops(w, spec)
    info = analyse(spec, source=w.source)
    inside = branch_nodes(spec, info)
    for name in sorted(parks & set(inside)):
        raise w.error(name, "step", f"an approval cannot wait inside the branches of {inside[name]!r} (one request, one "
                                    "approval at a time); put it before the fan-out or after its join")
    return spec


def branch_nodes(spec: GraphSpec, info: GraphInfo) -> dict[str, str]:
    """Every node that runs inside a fan-out's branches (before their join), with that fan-out."""
    inside: dict[str, str] = {}
    for fanout, join in info.join_of.items():
        stack = list(spec.node(fanout).branches())
        while stack:
            name = stack.pop()
            if name in TERMINALS or name == join or name in inside:
                continue
            inside[name] = fanout
            node = spec.node(name)
            stack += node.flow_targets() + ([node.fallback] if node.fallback else []) + (
                [node.on_limit] if node.max_visits and node.on_limit else [])
            if node.fans_out:
                stack.append(info.join_of[name])
    return inside


def _check_node(w: _Where, node: Node, names: list[str], output: Any) -> None:
    given = [f for f, v in (("next", node.next), ("routes", node.routes), ("map", node.map)) if v is not None]
    if len(given) > 1:
        raise w.error(node.name, given[1], f"give one of next, routes or map, not {' and '.join(given)}")
    for fld, target in node.edges():
        if target not in names and target not in TERMINALS:
            raise w.error(node.name, fld, f"edge to {target!r}, which is not a node (nor one of {list(TERMINALS)})")
    if isinstance(node.next, list):
        if len(node.next) < 2 or len(set(node.next)) != len(node.next):
            raise w.error(node.name, "next", "a fan-out lists two or more different nodes")
        terminal = [t for t in node.next if t in TERMINALS]
        if terminal:
            raise w.error(node.name, "next", f"a fan-out branch cannot start at {terminal[0]}")
    if node.routes is not None:
        values = route_values(output)
        if values is None:
            raise w.error(node.name, "routes", f"step {node.step!r} has no Output.route field (a Literal) to route on")
        missing = sorted(set(values) - set(node.routes))
        unknown = sorted(set(node.routes) - set(values))
        if missing or unknown:
            raise w.error(node.name, "routes", f"must cover exactly {values}; missing {missing}, unknown {unknown}")
    if node.map is not None:
        if not _list_field(output, node.map.over):
            raise w.error(node.name, "map.over", f"step {node.step!r} has no list field {node.map.over!r} in its Output")
        if node.map.to in TERMINALS:
            raise w.error(node.name, "map.to", "must be a node")
    if node.fallback is not None and (node.fallback in TERMINALS or node.fallback == node.name):
        raise w.error(node.name, "fallback", "must be another node")
    if node.max_visits is None and "on_limit" in node.model_fields_set:
        raise w.error(node.name, "on_limit", "is taken after max_visits: set max_visits too")


def _check_loops(w: _Where, spec: GraphSpec) -> None:
    """Cycles are allowed only through a node with ``max_visits``."""
    bounded = {n.name for n in spec.nodes if n.max_visits is not None}
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        if name in TERMINALS or name in bounded or state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = path[path.index(name):] + [name]
            raise w.error(cycle[0], "next", f"cycle {' -> '.join(cycle)} has no node with max_visits; "
                                            "add max_visits (and on_limit) to one of its nodes")
        state[name] = 1
        for target in spec.node(name).targets():
            visit(target, path + [name])
        state[name] = 2

    for node in spec.nodes:
        if node.name not in bounded:
            visit(node.name, [])
    for name in bounded:  # a bounded node's own successors must not cycle without it
        for target in spec.node(name).targets():
            visit(target, [name])


def analyse(spec: GraphSpec, source: str | None = None) -> GraphInfo:
    """Find the join that each fan-out's branches meet at; every branch must reach the same one."""
    w = _Where(source or f"pipeline {spec.name!r}")
    info = GraphInfo()
    joins = {n.name for n in spec.nodes if n.join is not None}

    def reach(start: str, seen: frozenset[str]) -> tuple[set[str], set[str]]:
        """(joins first reached, terminals reached) walking from ``start``; nested fan-outs jump to their join."""
        if start in TERMINALS:
            return set(), {start}
        if start in joins:
            return {start}, set()
        if start in seen:
            return set(), set()  # a loop inside a branch: the other edges decide
        node = spec.node(start)
        found: set[str] = set()
        ends: set[str] = set()
        nxt: list[str]
        if node.fans_out:
            inner = join_for(node)
            nxt = spec.node(inner).flow_targets()
        else:
            nxt = node.flow_targets()
        for target in nxt + ([node.fallback] if node.fallback else []) + ([node.on_limit] if node.max_visits else []):
            j, t = reach(target, seen | {start})
            found |= j
            ends |= t
        return found, ends

    def join_for(node: Node) -> str:
        if node.name in info.join_of:
            return info.join_of[node.name]
        fld = "next" if isinstance(node.next, list) else "map.to"
        met: set[str] = set()
        for branch in node.branches():
            found, ends = reach(branch, frozenset({node.name}))
            early = sorted(ends - {FAIL})
            if early:
                raise w.error(node.name, fld, f"branch {branch!r} reaches {early[0]} before a join; "
                                              "branches of a fan-out must meet at a node with join:")
            if not found:
                raise w.error(node.name, fld, f"branch {branch!r} never reaches a join; add a node with join: where they meet")
            met |= found
        if len(met) > 1:
            raise w.error(node.name, fld, f"branches meet at different joins {sorted(met)}; they must meet at one")
        (join,) = met
        info.join_of[node.name] = join
        info.fanouts_of.setdefault(join, []).append(node.name)
        return join

    for node in spec.nodes:
        if node.fans_out:
            join_for(node)
    for name in sorted(joins):
        if name not in info.fanouts_of:
            raise w.error(name, "join", "no fan-out (next: [a, b] or map:) leads to this join")
    return info
