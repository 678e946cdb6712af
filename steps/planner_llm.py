"""The LLM planner: the OpenAI tool-calling loop, bounded by model turns and by money.

One *iteration* is one model call. The model is offered every tool's ``json_schema()``; the tool
calls it asks for run in the order it gave them (:class:`steps.tool_calls.ToolExecutor`: bad
arguments and failing tools come back to it as the tool message, so it can correct itself), and
their results go back as ``role: tool`` messages. The loop ends when:

- the model answers without asking for a tool: ``done``;
- ``max_iterations`` model calls were made: ``max_iterations`` (the tools the last call asked for
  still run, so the answer can show their results; no further model call is made to read them);
- the spend of this execution (``ctx.cost_so_far()``: model calls priced with ``deps.prices``, plus
  paid tools) has reached ``budget_usd`` when the next model call is due: ``budget``.

How far past the budget it can go, exactly: a model call's price is known only after it returns, so
the check is made *before* each call. A call starts only while the spend is below ``budget_usd``,
hence the total is at most ``budget_usd`` plus the price of that one last call (at most its input
tokens at the input price plus ``max_tokens`` at the output price). A paid tool's price is known in
advance, so a tool never takes the spend past the budget: the plan stops instead (``budget``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from steps.base import StepContext
from steps.generation import cost_usd
from steps.providers import ChatModel
from steps.tool_calls import ToolExecutor
from steps.toolbox import ToolDef

__all__ = ["LLMOutcome", "run_llm"]


@dataclass
class LLMOutcome:
    stopped: Literal["done", "max_iterations", "budget"]
    answer: str | None  # the model's final answer; None when a limit stopped it first
    model_calls: int


async def run_llm(
    chat: ChatModel, tools: dict[str, ToolDef], executor: ToolExecutor, ctx: StepContext,
    prices: dict[str, tuple[float, float]], *, text: str, system: str, max_iterations: int,
    budget_usd: float | None, max_tokens: int,
) -> LLMOutcome:
    """Run the tool-calling conversation for ``text``; every model call is booked and recorded as a span."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}, {"role": "user", "content": text}]
    schemas = [tools[name].json_schema() for name in sorted(tools)]
    for turn in range(1, max_iterations + 1):
        if budget_usd is not None and ctx.cost_so_far() >= budget_usd:
            return LLMOutcome("budget", None, turn - 1)
        started = time.time()
        try:
            reply = await chat.chat(messages, tools=schemas, model=ctx.model, max_tokens=max_tokens)
        except Exception as exc:
            ctx.record_span("chat", started, time.time(), kind="llm", status="error",
                            error=f"{type(exc).__name__}: {exc}"[:500], iteration=turn,
                            **{"gen_ai.operation.name": "chat", "gen_ai.request.model": ctx.model or chat.model})
            raise
        price = cost_usd(prices, reply.model, reply.input_tokens, reply.output_tokens)
        ctx.record_usage(reply.model, reply.input_tokens, reply.output_tokens, price)
        # per-call tokens and cost under names of their own: the step's span already sums them as gen_ai.usage.*
        ctx.record_span("chat", started, time.time(), kind="llm", iteration=turn,
                        **{"gen_ai.operation.name": "chat", "gen_ai.request.model": reply.model,
                           "gen_ai.response.finish_reasons": [reply.finish_reason],
                           "call.input_tokens": reply.input_tokens, "call.output_tokens": reply.output_tokens,
                           "call.cost_usd": price, "tool_calls_requested": len(reply.tool_calls)})
        if not reply.tool_calls:
            return LLMOutcome("done", reply.content, turn)
        messages.append(reply.assistant_message())
        for call in reply.tool_calls:
            if not executor.affordable(call.name, budget_usd):
                return LLMOutcome("budget", None, turn)
            _, content = await executor.call(call.name, call.arguments, turn, raw_arguments=call.raw_arguments,
                                             call_id=call.id)
            messages.append({"role": "tool", "tool_call_id": call.id, "content": content})
    return LLMOutcome("max_iterations", None, max_iterations)
