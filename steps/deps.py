"""What steps are given, not what they look up: the embedder, the retrieval index, the LLM provider.

The worker builds one :class:`Deps` per process from plain configuration and hands it to each
step's ``warm_up(deps)``; a step keeps what it needs. Shared, so four steps do not load the model
four times; built from :class:`ResourceConfig`, so ``streams`` creates it from its settings without
``steps`` knowing about them. Nothing here imports a step module: a step imports this, never the
other way round. A test injects its own ``embedder`` or ``provider``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from steps.embedding import AsyncEmbedder, MiniLMEmbedder
from steps.provider_factory import make_breakers, make_provider
from steps.providers import ChatModel, LLMNotConfiguredError, Provider
from steps.resilience import CircuitBreaker, ResilientProvider

if TYPE_CHECKING:
    from steps.index import VectorIndex

__all__ = ["Deps", "ResourceConfig"]


@dataclass(frozen=True)
class ResourceConfig:
    """JSON-able configuration of the shared dependencies."""

    index_dir: Path
    corpus_path: Path | None = None
    llm_provider: str = "extractive"
    llm_base_url: str = "http://127.0.0.1:8000/v1"
    llm_api_key: str = ""
    llm_model: str = "gpt-4o-mini"
    llm_timeout_s: float = 20.0
    llm_max_tokens: int = 400
    llm_breaker_failures: int = 5
    llm_breaker_reset_s: float = 30.0
    llm_max_concurrency: int = 16
    llm_bulkhead_wait_s: float = 2.0
    llm_fallback: str = "none"
    prices: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def llm_name(self) -> str:
        """The provider as metrics and errors name it: ``openai:gpt-4o-mini``."""
        return f"{self.llm_provider}:{self.llm_model}"


class Deps:
    """The process-wide models and clients, each made once, lazily and loop-safely."""

    def __init__(
        self, config: ResourceConfig, *, embedder: AsyncEmbedder | None = None, provider: Provider | None = None
    ) -> None:
        self.config = config
        self.embedder = embedder if embedder is not None else AsyncEmbedder(MiniLMEmbedder())
        self._index: VectorIndex | None = None
        self._provider = provider
        self._index_lock = asyncio.Lock()
        self._breakers = make_breakers(config)  # built now (cheap): a gauge can show them before first use

    @property
    def prices(self) -> dict[str, tuple[float, float]]:
        """USD per million (input, output) tokens, by model."""
        return self.config.prices

    async def index(self) -> VectorIndex:
        """The retrieval index (loaded from the disk cache, or built once off the event loop)."""
        if self._index is None:
            async with self._index_lock:
                if self._index is None:
                    from steps.index import load_or_build

                    self._index = await self.embedder.run_sync(
                        load_or_build, self.config.index_dir, self.embedder.embedder, self.config.corpus_path
                    )
        return self._index

    def provider(self) -> Provider:
        """The generation provider named by the configuration."""
        if self._provider is None:
            self._provider = make_provider(self.config, self.embedder, breaker=self._breakers.get(self.config.llm_name))
        return self._provider

    @property
    def llm_configured(self) -> bool:
        """Whether a chat model (OpenAI-compatible) is configured, or only the offline generator."""
        return callable(getattr(self.provider(), "chat", None)) and self.config.llm_provider != "extractive"

    def chat(self, what: str = "this step") -> ChatModel:
        """The chat model (tool calling, agents); :class:`LLMNotConfiguredError` names the settings when offline."""
        provider = self.provider()
        if not callable(getattr(provider, "chat", None)) or self.config.llm_provider == "extractive":
            raise LLMNotConfiguredError(what)
        return provider  # type: ignore[return-value]

    def breakers(self) -> dict[str, CircuitBreaker]:
        """The circuit breaker of each remote provider, by provider name (none for offline ones)."""
        return dict(self._breakers)

    def fallbacks(self) -> dict[str, int]:
        """Answers each remote provider's fallback gave instead of it, since start."""
        count = self._provider.fallbacks if isinstance(self._provider, ResilientProvider) else 0
        return {name: count for name in self._breakers}

    async def close(self) -> None:
        if self._provider is not None:
            await self._provider.close()
        self.embedder.close()
