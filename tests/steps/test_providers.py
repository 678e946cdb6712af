"""The OpenAI-compatible provider against a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from steps.base import FatalStepError, RetryableStepError, StepContext
from steps.generation import Generation, cost_usd
from steps.providers import GenerationRequest, OpenAIProvider
from steps.resources import ResourceConfig, Resources

PASSAGES = [{"source": "library/stdtypes.html", "title": "Lists", "text": "list.reverse() reverses in place.", "score": 0.8}]


def generate(provider: OpenAIProvider, **kw: Any) -> Any:
    async def go() -> Any:
        try:
            return await provider.generate(GenerationRequest(question="How do I reverse a list?", passages=PASSAGES, **kw))
        finally:
            await provider.close()

    return asyncio.run(go())


def test_answer_tokens_and_prompt(fake_llm: Any) -> None:
    completion = generate(OpenAIProvider(fake_llm.base_url, "ok", api_key="sk-test"))
    assert completion.text.endswith("[1].")
    assert (completion.input_tokens, completion.output_tokens) == (120, 12)
    sent = fake_llm.requests[-1]
    assert sent["messages"][0]["role"] == "system"
    assert "[1] Lists (library/stdtypes.html)" in sent["messages"][-1]["content"]


def test_history_becomes_prior_messages(fake_llm: Any) -> None:
    from steps.base import Turn

    history = [Turn(request_id="r0", question="What is a list?", answer="A mutable sequence [1].")]
    generate(OpenAIProvider(fake_llm.base_url, "ok"), history=history)
    roles = [m["role"] for m in fake_llm.requests[-1]["messages"]]
    assert roles == ["system", "user", "assistant", "user"]


def test_server_errors_are_retryable_and_client_errors_fatal(fake_llm: Any) -> None:
    with pytest.raises(RetryableStepError, match="503"):
        generate(OpenAIProvider(fake_llm.base_url, "flaky"))
    with pytest.raises(FatalStepError, match="400"):
        generate(OpenAIProvider(fake_llm.base_url, "refuse"))


def test_unreachable_and_slow_servers_are_retryable(fake_llm: Any) -> None:
    with pytest.raises(RetryableStepError, match="unreachable"):
        generate(OpenAIProvider("http://127.0.0.1:1/v1", "ok", timeout_s=2))
    with pytest.raises(RetryableStepError):
        generate(OpenAIProvider(fake_llm.base_url, "slow", timeout_s=0.3))


def test_generation_step_records_cost_from_the_price_table(fake_llm: Any, tmp_path: Any) -> None:
    config = ResourceConfig(index_dir=tmp_path, llm_provider="openai", llm_base_url=fake_llm.base_url,
                            llm_model="ok", prices={"ok": (1.0, 2.0)})
    resources = Resources(config)
    step = Generation()
    ctx = StepContext(request_id="r-1")

    async def go() -> Any:
        await step.warm_up(resources)
        try:
            return await step.run(step.Input(text="How do I reverse a list?", passages=PASSAGES), ctx)
        finally:
            await resources.close()

    out = asyncio.run(go())
    assert [c.source for c in out.citations] == ["library/stdtypes.html"]
    assert ctx.usage[0].cost_usd == pytest.approx(cost_usd({"ok": (1.0, 2.0)}, "ok", 120, 12)) == pytest.approx(0.000144)
