"""Generation: the answer, from the retrieved passages and the session's conversation history."""

from __future__ import annotations

from typing import Any, ClassVar

from steps.base import StepContext, StepModel, Turn
from steps.deps import Deps
from steps.providers import Completion, GenerationRequest, cited_numbers
from steps.registry import step
from steps.retrieval import RetrievedPassage

__all__ = ["Citation", "Generation", "GenerationInput", "GenerationOutput", "cost_usd"]


class Citation(StepModel):
    source: str
    title: str
    score: float


class GenerationInput(StepModel):
    text: str
    intent: str = "howto"
    passages: list[RetrievedPassage] = []


class GenerationOutput(StepModel):
    answer: str
    citations: list[Citation]
    model: str


def cost_usd(prices: dict[str, tuple[float, float]], model: str, input_tokens: int, output_tokens: int) -> float:
    """Cost from a price table of USD per million (input, output) tokens; unknown models cost 0."""
    per_in, per_out = prices.get(model, (0.0, 0.0))
    return round((input_tokens * per_in + output_tokens * per_out) / 1_000_000, 8)


@step("generation")
class Generation:
    """Asks the configured provider for an answer and records its tokens and cost."""

    uses_history: ClassVar[bool] = True
    calls_model: ClassVar[bool] = True  # budgets and tiers are enforced before it runs

    def __init__(self, max_tokens: int = 400) -> None:
        self.max_tokens = max_tokens
        self._deps: Deps | None = None

    async def warm_up(self, deps: Deps) -> None:
        self._deps = deps
        deps.provider()

    async def run(self, input: GenerationInput, ctx: StepContext) -> GenerationOutput:
        if self._deps is None:
            raise RuntimeError("Generation.warm_up() must run before run()")
        passages = [p.model_dump() for p in input.passages]
        request = GenerationRequest(
            question=input.text, passages=passages, history=ctx.history, intent=input.intent, max_tokens=self.max_tokens,
            model=ctx.model,
        )
        completion: Completion = await self._deps.provider().generate(request)
        ctx.record_usage(
            completion.model,
            completion.input_tokens,
            completion.output_tokens,
            cost_usd(self._deps.prices, completion.model, completion.input_tokens, completion.output_tokens),
        )
        return GenerationOutput(answer=completion.text, citations=self._citations(completion), model=completion.model)

    @staticmethod
    def _citations(completion: Completion) -> list[Citation]:
        numbers = cited_numbers(completion.text, len(completion.passages))
        chosen: list[dict[str, Any]] = [completion.passages[n - 1] for n in numbers]
        return [Citation(source=p["source"], title=p["title"], score=float(p.get("score", 0.0))) for p in chosen]

    @staticmethod
    def turn(request_id: str, input: GenerationInput, output: GenerationOutput) -> Turn:
        """The history entry this answer adds to the session (passages kept short for follow-ups)."""
        cited = {c.source for c in output.citations}
        kept = [
            {"source": p.source, "title": p.title, "text": p.text[:800], "score": p.score}
            for p in input.passages
            if p.source in cited
        ][:3]
        return Turn(request_id=request_id, question=input.text, answer=output.answer, sources=sorted(cited), passages=kept)
