"""Pipelines from files: YAML or JSON (DESIGN.md §5), or a bundled pipeline by name.

``load_pipeline("flow.yaml")`` or ``load_pipeline("support")`` returns a validated
:class:`~streams.graph.GraphSpec`. Every mistake is one :class:`~streams.errors.GraphError` line
naming the file, the node and the field: a YAML syntax error, a schema error, an unknown step or
module, a bad config key, an edge to nowhere, routes not covering ``Output.route``, a cycle
without ``max_visits``, a join that nothing leads to.
"""

from __future__ import annotations

import json
from importlib import resources as importlib_resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from streams.errors import GraphError
from streams.graph import GraphSpec, StepResolver, validate

__all__ = ["bundled", "load_pipeline", "parse_pipeline", "resolve_step"]

SUFFIXES = (".yaml", ".yml", ".json")


def bundled() -> list[str]:
    """Names of the pipelines shipped with Conveyor (``streams/pipelines/*.yaml``)."""
    folder = importlib_resources.files("streams").joinpath("pipelines")
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def resolve_step(ref: str, config: dict[str, Any]) -> Any:
    """The step definition ``ref`` names, with ``config`` checked against it (raises a named error)."""
    from steps.registry import resolve

    definition = resolve(ref)
    definition.check_config(config)
    if definition.kind == "class":
        definition.build(config)  # __init__ is cheap by contract: its own checks (a tool name, a range) fail at load too
    return definition


def _read(text: str, source: str) -> Any:
    if source.endswith(".json"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise GraphError(f"{source}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "YAML"
        raise GraphError(f"{source}: {where}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None


def _schema_error(exc: ValidationError, data: dict[str, Any], source: str) -> GraphError:
    err = exc.errors()[0]
    loc = list(err["loc"])
    node = None
    if len(loc) >= 2 and loc[0] == "nodes" and isinstance(loc[1], int):
        raw = data.get("nodes") or []
        item = raw[loc[1]] if loc[1] < len(raw) else None
        node = item.get("name") if isinstance(item, dict) else None
        loc = loc[2:] if node is not None else loc
    fld = ".".join(str(p) for p in loc) or "(pipeline)"
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "is not a known field (see DESIGN.md §5 for the pipeline schema)"
    prefix = f"{source}, node {node!r}" if node is not None else source
    return GraphError(f"{prefix}, field {fld}: {msg}")


def parse_pipeline(data: Any, source: str, resolve: StepResolver = resolve_step) -> GraphSpec:
    """Validate plain data (parsed YAML/JSON, or ``Pipeline.to_dict()``) into a checked spec."""
    if not isinstance(data, dict):
        raise GraphError(f"{source}: a pipeline is a mapping with name, entry and nodes; got {type(data).__name__}")
    try:
        spec = GraphSpec.model_validate(data)
    except ValidationError as exc:
        raise _schema_error(exc, data, source) from None
    return validate(spec, resolve, source)


def load_pipeline(path_or_name: str | Path, resolve: StepResolver = resolve_step) -> GraphSpec:
    """A pipeline from a YAML/JSON file, or a bundled one by name (``support``, ``echo``)."""
    ref = str(path_or_name)
    path = Path(ref)
    if path.is_file():
        return parse_pipeline(_read(path.read_text(encoding="utf-8"), ref), ref, resolve)
    if ref.endswith(SUFFIXES) or "/" in ref:
        raise GraphError(f"{ref}: no such file (give a path to a .yaml/.json pipeline, or a bundled name: {bundled()})")
    if ref not in bundled():
        raise GraphError(f"unknown pipeline {ref!r}: not a file here, nor a bundled pipeline ({', '.join(bundled())})")
    text = importlib_resources.files("streams").joinpath(f"pipelines/{ref}.yaml").read_text(encoding="utf-8")
    return parse_pipeline(_read(text, f"{ref}.yaml"), f"pipeline {ref!r} (bundled {ref}.yaml)", resolve)
