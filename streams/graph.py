"""Pipeline graphs: nodes (steps), edges, conditional routes and per-node policy. No Faust here.

A :class:`GraphSpec` is plain data (pydantic), so it can be written in Python or loaded from
YAML/JSON; :func:`validate` resolves each node's step (a registered name or ``module:attribute``,
:func:`steps.registry.resolve`), checks its config and routes against the step, and raises
:class:`~streams.errors.GraphError` naming the node and field at fault.

A node has either ``next`` (one unconditional edge) or ``routes`` (the step's ``Output.route``
value → next node). Two targets are special: :data:`END` emits the final result and
:data:`REJECT` emits a ``rejected`` result (e.g. abusive requests).
"""

from __future__ import annotations

import re
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from steps.registry import StepDef, StepLoadError, resolve
from streams.errors import GraphError

__all__ = ["ECHO", "END", "REJECT", "GraphSpec", "Node", "Policy", "SUPPORT", "load_spec", "validate"]

END = "$end"
REJECT = "$reject"
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


class Node(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    step: str
    config: dict[str, Any] = {}
    next: str | None = None
    routes: dict[str, str] | None = None
    policy: Policy = Field(default_factory=Policy)

    def targets(self) -> list[str]:
        return list(self.routes.values()) if self.routes else [self.next or END]


class GraphSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    entry: str
    nodes: list[Node]

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise GraphError(f"pipeline {self.name!r} has no node {name!r}; nodes: {[n.name for n in self.nodes]}")


def _route_values(definition: StepDef) -> list[str] | None:
    """The Literal values of a step's ``Output.route`` field, if it has one."""
    return definition.route_values()


def validate(spec: GraphSpec, resolver: Callable[[str], StepDef] = resolve) -> GraphSpec:
    """Check names, steps and their config, edges, route coverage and acyclicity; return ``spec``."""
    where = f"pipeline {spec.name!r}"
    if not _NAME.match(spec.name):
        raise GraphError(f"{where}: name must match {_NAME.pattern} (it becomes part of topic names)")
    names = [n.name for n in spec.nodes]
    if not names:
        raise GraphError(f"{where}: nodes is empty; add at least one node")
    definitions: dict[str, StepDef] = {}
    for i, node in enumerate(spec.nodes):
        at = f"{where}, nodes[{i}] ({node.name!r})"
        if not _NAME.match(node.name) or node.name in RESERVED:
            raise GraphError(f"{at}: name must match {_NAME.pattern} and not be one of {RESERVED}")
        if names.count(node.name) > 1:
            raise GraphError(f"{at}: name is used by more than one node")
        try:
            definitions[node.name] = resolver(node.step)
            definitions[node.name].check_config(node.config)
        except StepLoadError as exc:
            raise GraphError(f"{at}: {exc}") from None
    for i, node in enumerate(spec.nodes):
        at = f"{where}, nodes[{i}] ({node.name!r})"
        if node.next is not None and node.routes is not None:
            raise GraphError(f"{at}: give either next or routes, not both")
        for target in node.targets():
            if target not in names and target not in (END, REJECT):
                raise GraphError(f"{at}: edge to {target!r}, which is not a node (nor {END!r} / {REJECT!r})")
        if node.routes is not None:
            values = _route_values(definitions[node.name])
            if values is None:
                raise GraphError(f"{at}: routes given but step {node.step!r} has no Output.route field")
            missing = sorted(set(values) - set(node.routes))
            unknown = sorted(set(node.routes) - set(values))
            if missing or unknown:
                raise GraphError(f"{at}: routes must cover exactly {values}; missing {missing}, unknown {unknown}")
    if spec.entry not in names:
        raise GraphError(f"{where}: entry {spec.entry!r} is not a node; nodes: {names}")
    _check_acyclic(spec)
    return spec


def _check_acyclic(spec: GraphSpec) -> None:
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2 or name in (END, REJECT):
            return
        if state.get(name) == 1:
            raise GraphError(f"pipeline {spec.name!r}: cycle {' -> '.join(path + [name])}; graphs must be acyclic")
        state[name] = 1
        for target in spec.node(name).targets():
            visit(target, path + [name])
        state[name] = 2

    for node in spec.nodes:
        visit(node.name, [])


def load_spec(data: dict[str, Any], resolver: Callable[[str], StepDef] = resolve) -> GraphSpec:
    """Build and validate a spec from plain data (parsed YAML or JSON)."""
    try:
        spec = GraphSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise GraphError(f"pipeline spec field {loc}: {first['msg']}") from None
    return validate(spec, resolver)


SUPPORT = GraphSpec(
    name="support",
    entry="classification",
    nodes=[
        Node(
            name="classification",
            step="classification",
            routes={"question": "retrieval", "smalltalk": "generation", "abuse": REJECT},
            policy=Policy(timeout_s=10),
        ),
        Node(name="retrieval", step="retrieval", next="generation", policy=Policy(timeout_s=10)),
        Node(name="generation", step="generation", next="safety", policy=Policy(timeout_s=60, retries=3)),
        Node(name="safety", step="safety", next=END, policy=Policy(timeout_s=10)),
    ],
)

# Four pass-through steps: the runtime's own cost per hop (``conveyor bench``) and a second graph
# for the conformance tests.
ECHO = GraphSpec(
    name="echo",
    entry="e1",
    nodes=[
        Node(name="e1", step="echo", next="e2"),
        Node(name="e2", step="echo", next="e3"),
        Node(name="e3", step="echo", next="e4"),
        Node(name="e4", step="echo", next=END),
    ],
)
