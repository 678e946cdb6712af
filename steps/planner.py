"""The built-in ``planner`` step: chooses which tools to call, in what order, within a budget.

::

    - name: plan
      step: planner
      config: {tools: [calculator, search_docs, mytools:lookup], max_iterations: 4, budget_usd: 0.01}

With a chat model configured (``CONVEYOR_LLM_PROVIDER=openai``) the model plans, through OpenAI
tool calling (:mod:`steps.planner_llm`); without one, the offline planner matches the request's
clauses against the tools' descriptions with the embedder and reads the arguments from the text
(:mod:`steps.planner_offline`). ``mode`` forces one or the other. Either way every tool call and
every model call is a span of its own, tool and model costs are booked as usage, and the output
says why the plan stopped:

- ``done``: the model answered, or every clause a tool fits was handled;
- ``no_match`` (offline): no tool fits any part of the request;
- ``max_iterations``: the limit of model calls (LLM) or tool calls (offline) was reached;
- ``budget``: the next call would spend past ``budget_usd`` (see :mod:`steps.planner_llm` for the
  exact bound on a model call's overshoot; a paid tool never overshoots).

``tools`` names registered tools (the built-in ones of :mod:`steps.builtin_tools` included) or
``module:function``; the default is every tool registered when the pipeline loads. A name that is
neither fails the pipeline at load, listing the registered tools. A step retried after a failed
model call runs its plan again from the start (tools included): make paid tools idempotent.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import steps.builtin_tools  # noqa: F401 - registers the built-in tools
from steps.base import StepContext, StepModel
from steps.deps import Deps
from steps.planner_llm import run_llm
from steps.planner_offline import OfflinePlanner
from steps.registry import step
from steps.tool_calls import ToolCallRecord, ToolExecutor
from steps.toolbox import ToolDef, UnknownToolError, resolve_tool, tools as registered_tools

__all__ = ["DEFAULT_SYSTEM", "Planner", "PlannerConfigError", "PlannerInput", "PlannerOutput", "compose_answer"]

DEFAULT_SYSTEM = (
    "You are a careful assistant with tools. Call a tool whenever it can answer part of the request better than "
    "you can (arithmetic, dates, the time, counting, documentation); call several in the order the request needs "
    "them. When a tool returns an error, fix the arguments and try again, or explain what went wrong. When you "
    "have what you need, answer briefly and say which results you used."
)
Stopped = Literal["done", "no_match", "max_iterations", "budget"]


class PlannerConfigError(ValueError):
    """A planner node's config cannot work (no tools, a negative budget): the message names the key."""


class PlannerInput(StepModel):
    text: str


class PlannerOutput(StepModel):
    answer: str
    tool_calls: list[ToolCallRecord]
    stopped: Stopped
    planner: Literal["llm", "offline"]
    unmatched: list[str] = []  # offline: parts of the request no tool handled (and why)
    spent_usd: float = 0.0  # models and paid tools, this execution


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _render(result: Any) -> str:
    if isinstance(result, dict):
        if isinstance(result.get("summary"), str):
            return result["summary"]
        return ", ".join(f"{k} {_short(v, 40)}" for k, v in result.items())
    if isinstance(result, list) and result and all(isinstance(r, dict) for r in result):
        return "; ".join(
            f"{i}. {r.get('title') or _short(r, 40)}" + (f" ({r['source']})" if r.get("source") else "")
            for i, r in enumerate(result, 1)
        )
    return _short(result, 300)


def compose_answer(records: list[ToolCallRecord], notes: list[str]) -> str:
    """A readable answer from tool results: one line per call, then what was not done."""
    lines = []
    for r in records:
        args = (_short(next(iter(r.arguments.values()))) if len(r.arguments) == 1
                else ", ".join(f"{k}={_short(v, 30)}" for k, v in r.arguments.items()))
        label = f"{r.name} ({args})" if args else r.name
        lines.append(f"- {label}: failed: {r.error}" if r.error else f"- {label}: {_render(r.result)}")
    return "\n".join(lines + notes)


@step("planner")
class Planner:
    """Plans and runs tool calls for a request (a chat model's tool calling, or offline matching)."""

    calls_model = True  # budgets and tiers are enforced before it runs

    def __init__(
        self, tools: list[str] | None = None, max_iterations: int = 5, budget_usd: float | None = None,
        system: str = DEFAULT_SYSTEM, min_score: float = 0.22, max_tokens: int = 800,
        mode: Literal["auto", "llm", "offline"] = "auto", result_chars: int = 2000,
    ) -> None:
        names = list(tools) if tools is not None else sorted(registered_tools())
        if not names:
            raise PlannerConfigError("tools: the planner needs at least one tool; name some, e.g. [calculator]")
        self.tools: dict[str, ToolDef] = {}
        for name in names:
            try:
                found = resolve_tool(name)
            except UnknownToolError as exc:
                raise UnknownToolError(f"config key 'tools': {exc}") from None
            self.tools[found.name] = found
        if max_iterations < 1:
            raise PlannerConfigError(f"max_iterations must be at least 1, not {max_iterations}")
        if budget_usd is not None and budget_usd < 0:
            raise PlannerConfigError(f"budget_usd must be >= 0 (or left out for no budget), not {budget_usd}")
        if not -1.0 <= min_score <= 1.0:
            raise PlannerConfigError(f"min_score is a cosine similarity between -1 and 1, not {min_score}")
        if result_chars < 100 or max_tokens < 1:
            raise PlannerConfigError("result_chars must be at least 100 and max_tokens at least 1")
        self.max_iterations = max_iterations
        self.budget_usd = budget_usd
        self.system = system
        self.min_score = min_score
        self.max_tokens = max_tokens
        self.mode = mode
        self.result_chars = result_chars
        self._deps: Deps | None = None
        self._offline: OfflinePlanner | None = None

    async def warm_up(self, deps: Deps) -> None:
        self._deps = deps
        if self.mode == "offline" or (self.mode == "auto" and not deps.llm_configured):
            self._offline = OfflinePlanner(self.tools, deps.embedder, self.min_score)
            await self._offline.warm_up()

    async def run(self, input: PlannerInput, ctx: StepContext) -> PlannerOutput:
        deps = self._deps
        if deps is None:
            raise RuntimeError("Planner.warm_up() must run before run()")
        executor = ToolExecutor(self.tools, ctx, deps, self.result_chars)
        use_llm = self.mode == "llm" or (self.mode == "auto" and deps.llm_configured)
        if use_llm:
            return await self._run_llm(input.text, ctx, deps, executor)
        return await self._run_offline(input.text, ctx, deps, executor)

    def _limit_note(self, stopped: str, ctx: StepContext, what: str) -> str:
        if stopped == "max_iterations":
            return f"Stopped after max_iterations={self.max_iterations} {what}."
        if stopped == "budget":
            return f"Stopped at the budget of ${self.budget_usd:g} (spent ${ctx.cost_so_far():.6f})."
        return ""

    async def _run_llm(self, text: str, ctx: StepContext, deps: Deps, executor: ToolExecutor) -> PlannerOutput:
        outcome = await run_llm(
            deps.chat("the planner step"), self.tools, executor, ctx, deps.prices, text=text, system=self.system,
            max_iterations=self.max_iterations, budget_usd=self.budget_usd, max_tokens=self.max_tokens,
        )
        if outcome.answer is not None:
            answer = outcome.answer or compose_answer(executor.records, [])
        else:
            note = self._limit_note(outcome.stopped, ctx, "model calls")
            head = f"The model had not answered when the plan stopped. {note}"
            answer = compose_answer(executor.records, []) + "\n" + head if executor.records else head
        return PlannerOutput(answer=answer.strip(), tool_calls=executor.records, stopped=outcome.stopped,
                             planner="llm", spent_usd=round(ctx.cost_so_far(), 8))

    async def _run_offline(self, text: str, ctx: StepContext, deps: Deps, executor: ToolExecutor) -> PlannerOutput:
        if self._offline is None:
            self._offline = OfflinePlanner(self.tools, deps.embedder, self.min_score)
        outcome = await self._offline.run(text, executor, self.max_iterations, self.budget_usd)
        unmatched = []
        for s in outcome.selections:
            if s.tool is None:
                why = "; ".join(s.passed_over) or "no tool fits it"
                unmatched.append(f"{s.clause!r}: {why}")
        notes = [f"Not done: {u}" for u in unmatched]
        if outcome.stopped in ("max_iterations", "budget"):
            notes.append(self._limit_note(outcome.stopped, ctx, "tool calls")
                         + " Left: " + "; ".join(repr(c) for c in outcome.not_done))
        if outcome.stopped == "no_match":
            notes.insert(0, f"No tool fits this request; the tools are: {', '.join(sorted(self.tools))}.")
        return PlannerOutput(answer=compose_answer(executor.records, notes), tool_calls=executor.records,
                             stopped=outcome.stopped, planner="offline", unmatched=unmatched,
                             spent_usd=round(ctx.cost_so_far(), 8))
