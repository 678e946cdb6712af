"""The devteam's model-driven agents: the planner, the coder and the reviewer (``@step`` classes).

Each asks the OpenAI-compatible chat model (``deps.chat``) with the model the node's tier chose
(``ctx.model``), books the call's tokens and cost (``ctx.record_usage``) and records it as an
``llm`` span (``ctx.record_span``). With only the offline generator configured they refuse the
request (:class:`RejectedStepError`, result ``rejected``) naming the settings to set: there is no
offline stand-in for a team of agents.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from steps.base import RejectedStepError, StepContext, StepError
from steps.deps import Deps
from steps.devteam.models import (
    CodeInput,
    CodeOutput,
    PlanInput,
    PlanOutput,
    ReviewInput,
    ReviewOutput,
    ReviewRecord,
)
from steps.devteam.prompts import OFFLINE, coder_messages, feedback, planner_messages, reviewer_messages
from steps.devteam.replies import parse_files, parse_tasks, parse_verdict
from steps.generation import cost_usd
from steps.providers import ChatReply
from steps.registry import step

__all__ = ["Agent", "Coder", "Planner", "Reviewer"]


class Agent:
    """What the three agents share: the deps from warm-up, the offline refusal, one booked model call."""

    role = "agent"
    calls_model = True  # budgets and tiers are enforced before it runs

    def __init__(self, max_tokens: int = 1200) -> None:
        self.max_tokens = max_tokens
        self._deps: Deps | None = None

    async def warm_up(self, deps: Deps) -> None:
        self._deps = deps

    def deps(self) -> Deps:
        if self._deps is None:
            raise RuntimeError(f"the devteam {self.role}: warm_up(deps) must run before run()")
        if not self._deps.llm_configured:
            raise RejectedStepError(OFFLINE)
        return self._deps

    async def ask(self, ctx: StepContext, messages: list[dict[str, Any]], **attributes: Any) -> ChatReply:
        """One chat call with the tier's model; its usage is booked and it becomes an ``llm`` span."""
        deps = self.deps()
        chat = deps.chat(f"the devteam {self.role}")
        requested = ctx.model or chat.model
        started = time.time()
        try:
            reply = await chat.chat(messages, model=ctx.model, max_tokens=self.max_tokens)
        except StepError as exc:
            ctx.record_span(f"{self.role}.chat", started, time.time(), kind="llm", status="error",
                            error=f"{type(exc).__name__}: {str(exc)[:300]}", **{"gen_ai.request.model": requested},
                            **attributes)
            raise
        cost = cost_usd(deps.prices, reply.model, reply.input_tokens, reply.output_tokens)
        ctx.record_usage(reply.model, reply.input_tokens, reply.output_tokens, cost)
        booked: dict[str, Any] = {
            "gen_ai.operation.name": "chat", "gen_ai.request.model": reply.model,
            "gen_ai.usage.input_tokens": reply.input_tokens, "gen_ai.usage.output_tokens": reply.output_tokens,
            "cost_usd": cost, "devteam.agent": self.role, **attributes,
        }
        ctx.record_span(f"{self.role}.chat", started, time.time(), kind="llm", **booked)
        return reply


@step("devteam-plan")
class Planner(Agent):
    """Splits a feature request into at most ``max_tasks`` independent tasks (module + tests each)."""

    role = "planner"

    def __init__(self, max_tasks: int = 5, max_tokens: int = 1200) -> None:
        super().__init__(max_tokens)
        self.max_tasks = max_tasks

    async def run(self, input: PlanInput, ctx: StepContext) -> PlanOutput:
        reply = await self.ask(ctx, planner_messages(input.text, self.max_tasks))
        tasks = parse_tasks(reply.content, self.max_tasks)
        if not tasks:
            raise RejectedStepError(
                "the devteam planner found no task in this request: describe a feature to build, e.g. "
                "'a slugify(text) function and a parse_duration(text) function'"
            )
        return PlanOutput(tasks=tasks)


@step("devteam-code")
class Coder(Agent):
    """Writes the next version of one task's module and tests, from the feedback on the previous one."""

    role = "coder"

    def __init__(self, max_tokens: int = 3000) -> None:
        super().__init__(max_tokens)

    async def run(self, input: CodeInput, ctx: StepContext) -> CodeOutput:
        version = input.version + 1
        said = feedback(input.version, input.reviews, input.test_runs) if input.version else ""
        messages = coder_messages(input.item, input.index, version, input.files, said)
        reply = await self.ask(ctx, messages, **{"devteam.task": input.item.module, "devteam.version": version})
        parsed = parse_files(reply.content, input.item)
        files = {**input.files, **parsed.files} if parsed.files else {}  # a reply may give only the changed file
        return CodeOutput(version=version, files=files, notes=parsed.notes, problems=parsed.problems)


@step("devteam-review")
class Reviewer(Agent):
    """Approves a version or asks for changes; a reply with no files is sent back without asking the model."""

    role = "reviewer"

    def __init__(self, max_tokens: int = 800) -> None:
        super().__init__(max_tokens)

    async def run(self, input: ReviewInput, ctx: StepContext) -> ReviewOutput:
        self.deps()  # offline: refuse before deciding anything
        if not input.files:
            record = ReviewRecord(version=input.version, verdict="changes", by_model=False,
                                  comments=input.problems or ["there were no files to review"])
            return ReviewOutput(route="changes", reviews=[*input.reviews, record])
        messages = reviewer_messages(input.item, input.version, input.files, input.reviews, input.problems)
        reply = await self.ask(ctx, messages, **{"devteam.task": input.item.module, "devteam.version": input.version})
        found = parse_verdict(reply.content)
        verdict: Literal["approved", "changes"] = "changes"  # no readable verdict: not approved, its words the comments
        comments = [reply.content.strip()[:1000] or "(the reviewer gave no verdict)"]
        if found is not None:
            verdict, comments = found
        record = ReviewRecord(version=input.version, verdict=verdict, comments=comments)
        return ReviewOutput(route=verdict, reviews=[*input.reviews, record])
