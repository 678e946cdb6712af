"""Echo: passes the request through and counts hops. For benchmarks and wiring tests of the runtime."""

from __future__ import annotations

from steps.base import StepContext, StepModel
from steps.registry import step

__all__ = ["Echo", "EchoInput", "EchoOutput"]


class EchoInput(StepModel):
    text: str
    hops: int = 0


class EchoOutput(StepModel):
    hops: int
    answer: str


@step("echo")
class Echo:
    """No model, no I/O: what remains of a step's cost is the runtime's own per-message work."""

    async def run(self, input: EchoInput, ctx: StepContext) -> EchoOutput:
        return EchoOutput(hops=input.hops + 1, answer=input.text)
