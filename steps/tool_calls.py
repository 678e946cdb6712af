"""Calling a planner's tools: one place that validates, runs, books cost, records a span and keeps the result.

Both planners (:mod:`steps.planner_llm`, :mod:`steps.planner_offline`) go through
:class:`ToolExecutor`, so a tool call looks the same whoever chose it:

- a bad call (unknown tool, unreadable JSON, arguments that do not fit the model) is not a crash:
  it becomes the call's ``error``, which the LLM planner sends back to the model as the tool's reply;
- a tool that raises is the same, except for a :class:`steps.base.StepError` (the tool's author saying
  "retry the step" or "this request cannot succeed"), which is raised on after its span is recorded;
- a tool's ``cost_usd`` is booked with ``ctx.record_usage`` (model ``tool:<name>``) once its arguments
  were valid and it ran, so the cost ledger and ``ctx.cost_so_far()`` see it;
- every call is a span (``kind="tool"``); its attributes name the argument keys with their types and
  sizes, not their values (spans are not scrubbed of personal data; results and errors are bounded).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from pydantic_core import to_jsonable_python

from steps.base import StepContext, StepError, StepModel
from steps.toolbox import ToolArgumentsError, ToolDef

__all__ = ["ToolCallRecord", "ToolExecutor", "summarise_arguments"]


class ToolCallRecord(StepModel):
    """One tool call a planner made, as its output reports it."""

    name: str
    arguments: dict[str, Any]
    result: Any = None  # JSON-able; a string ending "… [truncated: N chars]" when longer than the limit
    error: str | None = None
    iteration: int  # the model turn (LLM planner) or the call's number (offline planner), from 1
    cost_usd: float = 0.0


def summarise_arguments(arguments: Mapping[str, Any]) -> str:
    """``"expression: str(9), k: int"``: what a span may say about arguments without their values."""
    parts = []
    for key, value in arguments.items():
        size = f"({len(value)})" if isinstance(value, (str, list, dict)) else ""
        parts.append(f"{key}: {type(value).__name__}{size}")
    return ", ".join(parts)[:300]


def _bounded(value: Any, limit: int) -> tuple[Any, str]:
    """(the result as the record keeps it, the text the model reads), both within ``limit`` characters."""
    try:
        jsonable = to_jsonable_python(value)
    except Exception:  # noqa: BLE001 - a type pydantic cannot serialise: its text is the best we have
        jsonable = str(value)
    text = jsonable if isinstance(jsonable, str) else json.dumps(jsonable, ensure_ascii=False)
    if len(text) <= limit:
        return jsonable, text
    cut = f"{text[:limit]}… [truncated: {len(text)} chars]"
    return cut, cut


class ToolExecutor:
    """Runs the tools one planner execution may use, recording each call."""

    def __init__(self, tools: Mapping[str, ToolDef], ctx: StepContext, deps: Any, result_chars: int) -> None:
        self.tools = dict(tools)
        self.ctx = ctx
        self.deps = deps
        self.result_chars = result_chars
        self.records: list[ToolCallRecord] = []

    def affordable(self, name: str, budget_usd: float | None) -> bool:
        """Whether calling ``name`` keeps this execution's spend within ``budget_usd`` (its cost is known).

        A free tool is always affordable: it spends nothing, even when a model call already went past.
        """
        tool = self.tools.get(name)
        if budget_usd is None or tool is None or tool.cost_usd == 0:
            return True
        return self.ctx.cost_so_far() + tool.cost_usd <= budget_usd + 1e-12

    async def call(
        self, name: str, arguments: Mapping[str, Any], iteration: int, *, raw_arguments: str | None = None,
        call_id: str | None = None,
    ) -> tuple[ToolCallRecord, str]:
        """Run one call; returns its record (also kept in :attr:`records`) and the text for the model."""
        started = time.time()
        args = dict(arguments)
        tool = self.tools.get(name)
        result: Any = None
        content = ""
        error: str | None = None
        cost = 0.0
        raised: StepError | None = None
        if tool is None:
            error = f"there is no tool named {name!r}; the tools are: {', '.join(sorted(self.tools))}"
        elif raw_arguments and not _is_json_object(raw_arguments):
            error = f"tool {name!r}: the arguments are not a JSON object ({raw_arguments[:80]!r}); send valid JSON"
        else:
            try:
                tool.validate(args)  # bad arguments are the model's to fix, and cost nothing
                cost = tool.cost_usd
                value = await tool.call(args, deps=self.deps, ctx=self.ctx)
                result, content = _bounded(value, self.result_chars)
            except ToolArgumentsError as exc:
                error = str(exc)
            except StepError as exc:
                error, raised = f"{type(exc).__name__}: {exc}", exc
            except Exception as exc:  # noqa: BLE001 - the model (or the answer) reads what went wrong
                error = f"tool {name!r} failed: {type(exc).__name__}: {exc}"
        if cost:
            self.ctx.record_usage(f"tool:{name}", 0, 0, cost)
        if error is not None:
            error = error[:500]
            content = json.dumps({"error": error})
        record = ToolCallRecord(name=name, arguments=args, result=result, error=error, iteration=iteration, cost_usd=cost)
        self.records.append(record)
        self.ctx.record_span(
            name, started, time.time(), kind="tool", status="ok" if error is None else "error", error=error,
            **{"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name, "gen_ai.tool.call.id": call_id,
               "iteration": iteration, "arguments": summarise_arguments(args), "result_chars": len(content),
               "tool.cost_usd": cost},
        )
        if raised is not None:
            raise raised
        return record, content


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False
