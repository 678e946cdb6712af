"""The bundled pipelines are valid; pipeline files are refused with one line naming file, node and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from streams.errors import GraphError
from streams.graph import END, REJECT, TERMINALS, GraphSpec
from streams.pipeline_file import bundled, load_pipeline, parse_pipeline

BUNDLED = ["support", "echo", "research", "devteam", "assistant", "onboarding"]


def support() -> dict[str, Any]:
    return load_pipeline("support").to_dict()


def test_bundled_pipelines_are_files() -> None:
    assert sorted(BUNDLED) == [b for b in bundled() if b in BUNDLED]


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_graphs_are_valid_and_reach_an_end(name: str) -> None:
    graph: GraphSpec = load_pipeline(name)
    reachable, todo = set(), [graph.entry]
    while todo:
        node = todo.pop()
        if node in TERMINALS or node in reachable:
            continue
        reachable.add(node)
        todo += graph.node(node).targets()
    assert reachable == {n.name for n in graph.nodes}  # no dead nodes
    assert any(END in graph.node(n).targets() for n in reachable)


def test_support_routes() -> None:
    spec = load_pipeline("support")
    assert spec.node("classification").routes == {"question": "retrieval", "smalltalk": "generation", "abuse": REJECT}
    assert spec.node("safety").routes == {"allow": END, "redact": END, "block": "$block"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["nodes"][1].update(step="nope"), r"node 'retrieval', field step: .*'nope'"),
        (lambda d: d["nodes"][1].update(next="nowhere"), r"node 'retrieval', field next: edge to 'nowhere'"),
        (lambda d: d["nodes"][0]["routes"].pop("abuse"), r"field routes: must cover exactly .*missing \['abuse'\]"),
        (lambda d: d["nodes"][0]["routes"].update(other="retrieval"), r"unknown \['other'\]"),
        (lambda d: d["nodes"][2].update(next="retrieval"), r"cycle .*retrieval -> generation -> retrieval"),
        (lambda d: d.update(entry="missing"), r"field entry: 'missing' is not a node"),
        (lambda d: d["nodes"][1].update(name="classification"), r"used by more than one node"),
        (lambda d: d["nodes"][1].update(name="Bad_Name"), r"field name: must match"),
        (lambda d: d["nodes"][1].update(name="ingress"), r"not be one of"),
        (lambda d: d["nodes"][1].update(routes={"question": "generation"}), r"give one of next, routes or map"),
        (lambda d: d["nodes"][1].update(next=None, routes={"a": END}), r"no Output.route field"),
    ],
)
def test_validate_names_the_bad_field(change: Any, message: str) -> None:
    data = support()
    change(data)
    with pytest.raises(GraphError, match=message):
        parse_pipeline(data, "support.yaml")


def test_schema_errors_name_the_node_and_field() -> None:
    data = support()
    data["nodes"][0]["policy"]["retries"] = -1
    with pytest.raises(GraphError, match=r"support.yaml, node 'classification', field policy.retries"):
        parse_pipeline(data, "support.yaml")
    data = support()
    data["nodes"][0]["colour"] = "red"
    with pytest.raises(GraphError, match=r"node 'classification', field colour: is not a known field"):
        parse_pipeline(data, "support.yaml")


def test_files_yaml_and_json(tmp_path: Path) -> None:
    good = tmp_path / "flow.yaml"
    good.write_text("name: flow\nentry: a\nnodes:\n  - {name: a, step: echo}\n")
    assert load_pipeline(str(good)).name == "flow"
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: flow\nentry: a\nnodes:\n  - {name: a, step: echo\n")
    with pytest.raises(GraphError, match=r"bad.yaml: line \d+: not valid YAML"):
        load_pipeline(str(bad))
    as_json = tmp_path / "flow.json"
    as_json.write_text('{"name": "flow", "entry": "a", "nodes": [{"name": "a", "step": "echo", "next": "$end"}]}')
    assert load_pipeline(str(as_json)).node("a").next == END
    with pytest.raises(GraphError, match="no such file"):
        load_pipeline(str(tmp_path / "missing.yaml"))
    with pytest.raises(GraphError, match=r"unknown pipeline 'nope': .*support"):
        load_pipeline("nope")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"unsure_bellow": 0.5}, r"node 'classification', field config: .*unsure_bellow"),
        ({"unsure_below": "very"}, r"node 'classification', field config: .*unsure_below"),
    ],
)
def test_bad_config_is_a_load_error_naming_the_node(config: dict[str, Any], message: str) -> None:
    data = support()
    data["nodes"][0]["config"] = config
    with pytest.raises(GraphError, match=message):
        parse_pipeline(data, "support.yaml")


def test_missing_module_is_a_load_error_naming_the_node() -> None:
    data = support()
    data["nodes"][1]["step"] = "no_such_module_here:thing"
    with pytest.raises(GraphError, match=r"node 'retrieval', field step: .*no_such_module_here"):
        parse_pipeline(data, "support.yaml")
