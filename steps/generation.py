"""Generation: the answer, from the retrieved passages and the session's conversation history."""

from __future__ import annotations

from typing import Any, ClassVar

from steps.base import StepContext, StepModel, Turn
from steps.embedding import AsyncEmbedder
from steps.providers import (
    Completion,
    ExtractiveProvider,
    GenerationRequest,
    OpenAIProvider,
    Provider,
    cited_numbers,
)
from steps.resilience import Bulkhead, CircuitBreaker, ResilientProvider
from steps.resources import ResourceConfig, Resources
from steps.retrieval import RetrievedPassage

__all__ = [
    "UnknownFallbackError",
    "UnknownProviderError",
    "Citation",
    "Generation",
    "GenerationInput",
    "GenerationOutput",
    "cost_usd",
    "make_breakers",
    "make_provider",
]


class UnknownProviderError(ValueError):
    """CONVEYOR_LLM_PROVIDER names no provider: use 'extractive' or 'openai'."""


class UnknownFallbackError(ValueError):
    """CONVEYOR_LLM_FALLBACK names no fallback: use 'none' or 'extractive'."""


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


def make_breakers(config: ResourceConfig) -> dict[str, CircuitBreaker]:
    """One circuit breaker per remote provider, by name; the offline provider needs none."""
    if config.llm_provider != "openai":
        return {}
    breaker = CircuitBreaker(config.llm_breaker_failures, config.llm_breaker_reset_s, name=config.llm_name)
    return {config.llm_name: breaker}


def make_provider(config: ResourceConfig, embedder: AsyncEmbedder, breaker: CircuitBreaker | None = None) -> Provider:
    """The configured provider; a remote one behind a breaker, a bulkhead and the configured fallback."""
    if config.llm_provider == "extractive":
        return ExtractiveProvider(embedder)
    if config.llm_provider == "openai":
        primary = OpenAIProvider(config.llm_base_url, config.llm_model, config.llm_api_key, config.llm_timeout_s)
        return ResilientProvider(
            primary,
            breaker if breaker is not None else make_breakers(config)[config.llm_name],
            Bulkhead(config.llm_max_concurrency, config.llm_bulkhead_wait_s, name=config.llm_name),
            fallback=_fallback(config, embedder),
        )
    raise UnknownProviderError(
        f"unknown LLM provider {config.llm_provider!r}: set CONVEYOR_LLM_PROVIDER to 'extractive' or 'openai'"
    )


def _fallback(config: ResourceConfig, embedder: AsyncEmbedder) -> Provider | None:
    if config.llm_fallback == "none":
        return None
    if config.llm_fallback == "extractive":
        return ExtractiveProvider(embedder)
    raise UnknownFallbackError(
        f"unknown LLM fallback {config.llm_fallback!r}: set CONVEYOR_LLM_FALLBACK to 'none' or 'extractive'"
    )


class Generation:
    """Asks the configured provider for an answer and records its tokens and cost."""

    name: ClassVar[str] = "generation"
    Input: ClassVar[type[StepModel]] = GenerationInput
    Output: ClassVar[type[StepModel]] = GenerationOutput
    uses_history: ClassVar[bool] = True

    def __init__(self, max_tokens: int = 400) -> None:
        self.max_tokens = max_tokens
        self._resources: Resources | None = None

    async def warm_up(self, resources: Resources) -> None:
        self._resources = resources
        resources.provider()

    async def run(self, input: GenerationInput, ctx: StepContext) -> GenerationOutput:
        if self._resources is None:
            raise RuntimeError("Generation.warm_up() must run before run()")
        passages = [p.model_dump() for p in input.passages]
        request = GenerationRequest(
            question=input.text, passages=passages, history=ctx.history, intent=input.intent, max_tokens=self.max_tokens
        )
        completion: Completion = await self._resources.provider().generate(request)
        ctx.record_usage(
            completion.model,
            completion.input_tokens,
            completion.output_tokens,
            cost_usd(self._resources.config.prices, completion.model, completion.input_tokens, completion.output_tokens),
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
