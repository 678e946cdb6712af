"""Steps for the engine's broker tests: a user's module, imported by workers as ``flowsteps:<name>``."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from pydantic import BaseModel

from streams import RetryableStepError, StepContext, step


class Text(BaseModel):
    text: str
    metadata: dict[str, Any] = {}


class Tag(BaseModel):
    tag: str


class Joined(BaseModel):
    branches: dict[str, dict[str, Any]]
    missing: list[str] = []


class Summary(BaseModel):
    got: list[str]
    missing: list[str]


class Counter(BaseModel):
    rounds: int = 0


class Verdict(BaseModel):
    rounds: int
    route: Literal["again", "done"]


@step("flow-fast")
async def fast(input: Text, ctx: StepContext) -> Tag:
    return Tag(tag="fast")


@step("flow-slow")
async def slow(input: Text, ctx: StepContext) -> Tag:
    await asyncio.sleep(float(input.metadata.get("slow_s", 6)))
    return Tag(tag="slow")


@step("flow-gather")
async def gather(input: Joined, ctx: StepContext) -> Summary:
    return Summary(got=sorted(input.branches), missing=sorted(str(m) for m in input.missing))


@step("flow-judge")
async def judge(input: Counter, ctx: StepContext) -> Verdict:
    await asyncio.sleep(0.5)
    return Verdict(rounds=input.rounds + 1, route="again")


@step("flow-flaky")
async def flaky(input: Text, ctx: StepContext) -> Tag:
    if "flaky" in input.text and ctx.request_id not in _failed_once:
        _failed_once.add(ctx.request_id)
        raise RetryableStepError("flaky dependency", retry_after_s=3.0)
    return Tag(tag="ok")


_failed_once: set[str] = set()
