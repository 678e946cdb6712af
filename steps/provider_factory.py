"""The generation provider a configuration names, and the circuit breakers of remote ones.

Kept apart from :mod:`steps.providers` (which :mod:`steps.resilience` builds on) and from
:mod:`steps.deps` (which calls it): the factory needs both providers and their resilience wrappers,
and neither needs it back. It reads its settings through :class:`LLMConfig`, a protocol that
:class:`steps.deps.ResourceConfig` satisfies, so it imports no configuration module either.
"""

from __future__ import annotations

from typing import Protocol

from steps.embedding import AsyncEmbedder
from steps.providers import ExtractiveProvider, OpenAIProvider, Provider
from steps.resilience import Bulkhead, CircuitBreaker, ResilientProvider

__all__ = ["LLMConfig", "UnknownFallbackError", "UnknownProviderError", "make_breakers", "make_provider"]


class UnknownProviderError(ValueError):
    """CONVEYOR_LLM_PROVIDER names no provider: use 'extractive' or 'openai'."""


class UnknownFallbackError(ValueError):
    """CONVEYOR_LLM_FALLBACK names no fallback: use 'none' or 'extractive'."""


class LLMConfig(Protocol):
    """The settings a provider is built from (read-only)."""

    @property
    def llm_provider(self) -> str: ...
    @property
    def llm_base_url(self) -> str: ...
    @property
    def llm_api_key(self) -> str: ...
    @property
    def llm_model(self) -> str: ...
    @property
    def llm_timeout_s(self) -> float: ...
    @property
    def llm_breaker_failures(self) -> int: ...
    @property
    def llm_breaker_reset_s(self) -> float: ...
    @property
    def llm_max_concurrency(self) -> int: ...
    @property
    def llm_bulkhead_wait_s(self) -> float: ...
    @property
    def llm_fallback(self) -> str: ...
    @property
    def llm_name(self) -> str: ...


def make_breakers(config: LLMConfig) -> dict[str, CircuitBreaker]:
    """One circuit breaker per remote provider, by name; the offline provider needs none."""
    if config.llm_provider != "openai":
        return {}
    breaker = CircuitBreaker(config.llm_breaker_failures, config.llm_breaker_reset_s, name=config.llm_name)
    return {config.llm_name: breaker}


def make_provider(config: LLMConfig, embedder: AsyncEmbedder, breaker: CircuitBreaker | None = None) -> Provider:
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


def _fallback(config: LLMConfig, embedder: AsyncEmbedder) -> Provider | None:
    if config.llm_fallback == "none":
        return None
    if config.llm_fallback == "extractive":
        return ExtractiveProvider(embedder)
    raise UnknownFallbackError(
        f"unknown LLM fallback {config.llm_fallback!r}: set CONVEYOR_LLM_FALLBACK to 'none' or 'extractive'"
    )
