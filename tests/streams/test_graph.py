from __future__ import annotations

from typing import Any

import pytest

from steps.registry import resolve
from streams.errors import GraphError
from streams.graph import ECHO, END, REJECT, SUPPORT, GraphSpec, load_spec, validate

BUNDLED = [SUPPORT, ECHO]


def spec(**over: Any) -> dict[str, Any]:
    base = SUPPORT.model_dump()
    base.update(over)
    return base


@pytest.mark.parametrize("graph", BUNDLED, ids=lambda g: g.name)
def test_bundled_graphs_are_valid_and_reach_an_end(graph: GraphSpec) -> None:
    validate(graph, resolve)
    reachable, todo = set(), [graph.entry]
    while todo:
        name = todo.pop()
        if name in (END, REJECT) or name in reachable:
            continue
        reachable.add(name)
        todo += graph.node(name).targets()
    assert reachable == {n.name for n in graph.nodes}  # no dead nodes
    assert any(END in graph.node(n).targets() for n in reachable)


def test_support_routes() -> None:
    routes = SUPPORT.node("classification").routes
    assert routes == {"question": "retrieval", "smalltalk": "generation", "abuse": REJECT}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["nodes"][1].update(step="nope"), r"nodes\[1\] \('retrieval'\): step 'nope' is not a known step"),
        (lambda d: d["nodes"][1].update(next="nowhere"), r"edge to 'nowhere'"),
        (lambda d: d["nodes"][0]["routes"].pop("abuse"), r"routes must cover exactly .*missing \['abuse'\]"),
        (lambda d: d["nodes"][0]["routes"].update(other="retrieval"), r"unknown \['other'\]"),
        (lambda d: d["nodes"][2].update(next="retrieval"), r"cycle .*retrieval -> generation -> retrieval"),
        (lambda d: d.update(entry="missing"), r"entry 'missing' is not a node"),
        (lambda d: d["nodes"][1].update(name="classification"), r"used by more than one node"),
        (lambda d: d["nodes"][1].update(name="Bad_Name"), r"name must match"),
        (lambda d: d["nodes"][1].update(name="ingress"), r"not be one of"),
        (lambda d: d["nodes"][1].update(routes={"question": "generation"}), r"either next or routes"),
        (lambda d: d["nodes"][1].update(next=None, routes={"a": END}), r"no Output.route field"),
        (lambda d: d["nodes"][1].update(config={"topk": 3}), r"nodes\[1\] \('retrieval'\): .*unknown config key 'topk'; accepted keys: top_k"),
        (lambda d: d["nodes"][1].update(config={"top_k": "many"}), r"nodes\[1\] \('retrieval'\): .*config key 'top_k': .*integer"),
        (lambda d: d["nodes"][1].update(step="no_such_module:step"), r"nodes\[1\] \('retrieval'\): step 'no_such_module:step': no module"),
    ],
)
def test_validate_names_the_bad_field(change: Any, message: str) -> None:
    data = spec()
    change(data)
    with pytest.raises(GraphError, match=message):
        load_spec(data)


def test_schema_errors_name_the_field() -> None:
    data = spec()
    data["nodes"][0]["policy"]["retries"] = -1
    with pytest.raises(GraphError, match=r"nodes\.0\.policy\.retries"):
        load_spec(data)
    with pytest.raises(GraphError, match="nodes.0.colour"):
        load_spec(spec(nodes=[{**SUPPORT.nodes[0].model_dump(), "colour": "red"}]))
