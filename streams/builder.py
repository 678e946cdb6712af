"""``Pipeline``: the Python builder of the same spec a pipeline file holds (DESIGN.md §5).

::

    from streams import Pipeline

    flow = (
        Pipeline("wordy", entry="split")
        .node("split", "mysteps:split", next=["upper", "count"])
        .node("upper", shout, policy={"timeout_s": 5, "retries": 2}, fallback="upper-plain", next="gather")
        .node("upper-plain", "mysteps:plain", next="gather")
        .node("count", "mysteps:count", next="gather")
        .node("gather", "mysteps:combine", join={"policy": "all", "timeout_s": 10})
        .result("summary")
    )
    spec = flow.build()          # validated: the same errors as `conveyor check`
    flow.to_yaml()               # the equivalent pipeline file

Like LangGraph's builder/compile split: the builder is mutable and checks nothing until
:meth:`build`; the spec it builds is what a worker (or ``streams.testing.run``) runs.
"""

from __future__ import annotations

from typing import Any

from streams.graph import GraphSpec

__all__ = ["Pipeline"]


def _ref(step: Any) -> str:
    """A step given as a decorated function/class becomes ``module:attribute`` (or its registered name)."""
    if isinstance(step, str):
        return step
    definition = getattr(step, "__conveyor_step__", None)
    name = getattr(definition, "name", None)
    module, attr = getattr(step, "__module__", None), getattr(step, "__qualname__", None)
    if module and attr and "<" not in attr and module != "__main__":
        return f"{module}:{attr}"
    if name:
        return str(name)
    raise TypeError(f"{step!r} is not a step: give a registered name, 'module:attribute', or a function/class decorated with @step")


class Pipeline:
    """Declare nodes one by one; :meth:`build` validates and returns the :class:`~streams.graph.GraphSpec`."""

    def __init__(self, name: str, entry: str | None = None) -> None:
        self.name = name
        self.entry = entry
        self._nodes: list[dict[str, Any]] = []
        self._result: list[str] = []

    def node(self, name: str, step: Any, **fields: Any) -> Pipeline:
        """Add a node: ``step`` is a registered name, ``module:attribute`` or a decorated step; ``fields`` as in YAML
        (``next``, ``routes``, ``map``, ``join``, ``fallback``, ``max_visits``, ``on_limit``, ``policy``, ``config``)."""
        self._nodes.append({"name": name, "step": _ref(step), **{k: v for k, v in fields.items() if v is not None}})
        if self.entry is None:
            self.entry = name
        return self

    def result(self, *fields: str) -> Pipeline:
        """State fields copied into ``Result.output``."""
        self._result.extend(fields)
        return self

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "entry": self.entry, "nodes": list(self._nodes)}
        if self._result:
            data["result"] = list(self._result)
        return data

    def to_yaml(self) -> str:
        import yaml

        return str(yaml.safe_dump(self.to_dict(), sort_keys=False))

    def build(self) -> GraphSpec:
        from streams.pipeline_file import parse_pipeline

        return parse_pipeline(self.to_dict(), f"Pipeline({self.name!r})")

    spec = build
