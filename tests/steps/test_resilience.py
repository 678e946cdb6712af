"""Circuit breaker, bulkhead and fallback: pure under a fake clock, then against a hanging server on loopback."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from steps.base import FatalStepError, RetryableStepError, StepContext
from steps.deps import Deps, ResourceConfig
from steps.provider_factory import UnknownFallbackError
from steps.providers import Completion, ExtractiveProvider, GenerationRequest, OpenAIProvider
from steps.resilience import Bulkhead, BulkheadFullError, CircuitBreaker, CircuitOpenError, ResilientProvider
from steps.registry import resolve

REQUEST = GenerationRequest(question="How do I reverse a list?", passages=[
    {"source": "library/stdtypes.html", "title": "Lists", "text": "list.reverse() reverses in place.", "score": 0.8}])


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def fail(breaker: CircuitBreaker, error: Exception | None = None) -> None:
    error = error or RetryableStepError("503")
    with pytest.raises(type(error)):
        with breaker.call():
            raise error


def succeed(breaker: CircuitBreaker) -> None:
    with breaker.call():
        pass


def finish(call: Any, error: Exception | None = None) -> None:
    """End a call begun with ``call.__enter__()`` (still in flight meanwhile) as its ``with`` would."""
    if error is None:
        call.__exit__(None, None, None)
    else:
        assert call.__exit__(type(error), error, None) is False  # re-raised, not swallowed


def test_breaker_opens_after_consecutive_failures_only() -> None:
    b = CircuitBreaker(failure_threshold=3, reset_after_s=10.0, clock=Clock(), name="openai:m")
    fail(b)
    fail(b, TimeoutError())
    succeed(b)  # not consecutive: starts over
    fail(b)
    fail(b, ConnectionError())
    assert (b.state, b.value) == ("closed", 0)
    fail(b)
    assert (b.state, b.value) == ("open", 2)
    with pytest.raises(CircuitOpenError, match=r"openai:m.*next probe in 10\.0s"):
        succeed(b)


def test_fatal_errors_do_not_count_against_the_provider() -> None:
    b = CircuitBreaker(failure_threshold=2, clock=Clock())
    fail(b)
    for _ in range(5):
        fail(b, FatalStepError("400"))  # the provider answered: the request was at fault
    fail(b)
    assert b.state == "closed"


def test_half_open_lets_one_probe_through_and_its_result_decides() -> None:
    clock = Clock()
    b = CircuitBreaker(failure_threshold=1, reset_after_s=30.0, clock=clock)
    fail(b)
    clock.now += 29.9
    assert b.state == "open"
    clock.now += 0.1
    assert (b.state, b.value) == ("half_open", 1)
    probe = b.call()
    probe.__enter__()
    with pytest.raises(CircuitOpenError, match="probe call is in flight"):
        succeed(b)  # exactly one probe at a time
    finish(probe, RetryableStepError("still down"))
    assert b.state == "open"  # probe failed: open again, for another reset_after_s
    clock.now += 30.0
    succeed(b)  # probe succeeded
    assert b.state == "closed"
    succeed(b)


def test_a_cancelled_probe_frees_the_probe_slot() -> None:
    clock = Clock()
    b = CircuitBreaker(failure_threshold=1, reset_after_s=1.0, clock=clock)
    fail(b)
    clock.now += 1.0
    fail(b, asyncio.CancelledError())  # says nothing about the provider
    assert b.state == "half_open"
    succeed(b)
    assert b.state == "closed"


def test_late_results_of_calls_started_before_the_circuit_opened_are_ignored() -> None:
    clock = Clock()
    b = CircuitBreaker(failure_threshold=2, reset_after_s=10.0, clock=clock)
    slow_fail, slow_ok = b.call(), b.call()
    slow_fail.__enter__()
    slow_ok.__enter__()
    fail(b)
    fail(b)
    clock.now += 5.0
    finish(slow_fail, RetryableStepError("late"))
    finish(slow_ok)
    assert b.state == "open"  # a late success does not close it
    clock.now += 5.0
    assert b.state == "half_open"  # and a late failure did not push the probe back


def test_bulkhead_refuses_the_call_over_the_limit_then_admits_again() -> None:
    async def go() -> None:
        bulkhead = Bulkhead(max_concurrent=2, acquire_timeout_s=0.05, name="openai:m")
        release = asyncio.Event()

        async def hold() -> None:
            async with bulkhead.slot():
                await release.wait()

        holders = [asyncio.create_task(hold()) for _ in range(2)]
        await asyncio.sleep(0)
        assert bulkhead.in_flight == 2
        with pytest.raises(BulkheadFullError, match="all 2 slots to openai:m"):
            async with bulkhead.slot():
                raise AssertionError("admitted over the limit")
        release.set()
        await asyncio.gather(*holders)
        async with bulkhead.slot():
            assert bulkhead.in_flight == 1
        assert bulkhead.in_flight == 0

    asyncio.run(go())


def test_bulkhead_hands_freed_slots_to_waiters_and_never_exceeds_the_limit() -> None:
    async def go() -> tuple[int, int]:
        bulkhead = Bulkhead(max_concurrent=3, acquire_timeout_s=5.0)
        peak = 0

        async def work() -> None:
            nonlocal peak
            async with bulkhead.slot():
                peak = max(peak, bulkhead.in_flight)
                await asyncio.sleep(0.01)

        await asyncio.gather(*(work() for _ in range(12)))
        return peak, bulkhead.in_flight

    assert asyncio.run(go()) == (3, 0)


class FakeProvider:
    """A provider answering with ``model`` or raising ``error``, counting its calls."""

    def __init__(self, model: str, error: Exception | None = None) -> None:
        self.model = model
        self.error = error
        self.calls = 0

    async def generate(self, request: GenerationRequest) -> Completion:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return Completion(text="answer [1]", model=self.model, input_tokens=1, output_tokens=1)

    async def close(self) -> None:
        return None


def test_open_circuit_fails_fast_or_falls_back() -> None:
    async def go() -> None:
        down = FakeProvider("primary", RetryableStepError("503"))
        alone = ResilientProvider(down, CircuitBreaker(2, clock=Clock()), Bulkhead(4, 0.1))
        for _ in range(2):
            with pytest.raises(RetryableStepError, match="503"):
                await alone.generate(REQUEST)
        with pytest.raises(CircuitOpenError):
            await alone.generate(REQUEST)
        assert down.calls == 2  # the open circuit did not call it

        backup = FakeProvider("backup")
        covered = ResilientProvider(down, alone.breaker, Bulkhead(4, 0.1), fallback=backup)
        answer = await covered.generate(REQUEST)
        assert (answer.model, covered.model, covered.fallbacks, down.calls) == ("backup", "primary", 1, 2)

    asyncio.run(go())


def test_fatal_errors_pass_through_without_fallback() -> None:
    async def go() -> None:
        refusing = FakeProvider("primary", FatalStepError("400"))
        provider = ResilientProvider(refusing, CircuitBreaker(1), Bulkhead(4, 0.1), fallback=FakeProvider("backup"))
        for _ in range(3):
            with pytest.raises(FatalStepError):
                await provider.generate(REQUEST)
        assert provider.breaker.state == "closed" and provider.fallbacks == 0

    asyncio.run(go())


def test_full_bulkhead_falls_back_and_hung_calls_open_the_circuit(fake_llm: Any) -> None:
    """Two hung calls fill the bulkhead: the third is answered by the fallback while they hang."""
    hanging = ResilientProvider(
        OpenAIProvider(fake_llm.base_url, "hang", timeout_s=2.0), CircuitBreaker(2, 60.0, name="openai:hang"),
        Bulkhead(2, 0.2, name="openai:hang"), fallback=OpenAIProvider(fake_llm.base_url, "backup-model"),
    )

    async def go() -> tuple[Completion, int, list[Any]]:
        try:
            hung = [asyncio.create_task(hanging.generate(REQUEST)) for _ in range(2)]
            await asyncio.sleep(0)
            third = await hanging.generate(REQUEST)
            pending = sum(not t.done() for t in hung)
            return third, pending, await asyncio.gather(*hung, return_exceptions=True)
        finally:
            await hanging.close()

    third, pending, hung = asyncio.run(go())
    assert third.model == "backup-model" and pending == 2 and hanging.fallbacks == 1
    assert all(isinstance(e, RetryableStepError) for e in hung)
    assert hanging.breaker.state == "open"


def test_hanging_provider_opens_its_circuit_without_touching_another(fake_llm: Any) -> None:
    """Hung calls time out until the circuit opens; then the fallback answers at once, never the hang.

    The bounds are logical: the server hangs 30 s, each call gives up after 2 s, and the calls after
    the circuit opened must all be answered in under 5 s, far before any hang would have ended.
    """
    hang_s, timeout_s = 30.0, 2.0
    hanging = ResilientProvider(
        OpenAIProvider(fake_llm.base_url, "hang", timeout_s=timeout_s), CircuitBreaker(3, 60.0, name="openai:hang"),
        Bulkhead(16, 0.5), fallback=OpenAIProvider(fake_llm.base_url, "backup-model"),
    )
    healthy = ResilientProvider(OpenAIProvider(fake_llm.base_url, "ok", timeout_s=timeout_s),
                                CircuitBreaker(3, 60.0, name="openai:ok"), Bulkhead(16, 0.5))

    async def go() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        try:
            hung = [asyncio.create_task(hanging.generate(REQUEST)) for _ in range(4)]
            await asyncio.sleep(0)
            unaffected = await healthy.generate(REQUEST)  # while all four hang
            pending = sum(not t.done() for t in hung)
            failures = await asyncio.gather(*hung, return_exceptions=True)
            calls_when_opened = fake_llm.calls["hang"]
            started = loop.time()
            after = await asyncio.gather(*(hanging.generate(REQUEST) for _ in range(8)))
            return {"unaffected": unaffected, "pending": pending, "failures": failures, "after": after,
                    "elapsed": loop.time() - started, "new_calls": fake_llm.calls["hang"] - calls_when_opened}
        finally:
            await hanging.close()
            await healthy.close()

    out = asyncio.run(go())
    assert out["unaffected"].model == "ok" and out["pending"] == 4
    assert all(isinstance(e, RetryableStepError) for e in out["failures"])
    assert hanging.breaker.state == "open" and healthy.breaker.state == "closed"
    assert [c.model for c in out["after"]] == ["backup-model"] * 8 and hanging.fallbacks == 8
    assert out["new_calls"] == 0  # the open circuit sent nothing to the hanging server
    assert out["elapsed"] < 5.0 < hang_s


def test_configured_fallback_answers_the_generation_step_while_the_circuit_is_open(fake_llm: Any, tmp_path: Any) -> None:
    config = ResourceConfig(index_dir=tmp_path, llm_provider="openai", llm_base_url=fake_llm.base_url, llm_model="ok",
                            llm_breaker_failures=2, llm_fallback="extractive", prices={"ok": (1.0, 2.0)})
    deps = Deps(config)
    (name, breaker), = deps.breakers().items()
    assert name == "openai:ok" and breaker.failure_threshold == 2 and breaker.state == "closed"
    step = resolve("generation").build({})
    ctx = StepContext(request_id="r-open")

    async def go() -> Any:
        await step.warm_up(deps)
        provider = deps.provider()
        assert isinstance(provider, ResilientProvider) and provider.breaker is breaker
        assert isinstance(provider.fallback, ExtractiveProvider) and provider.bulkhead.max_concurrent == 16
        fail(breaker)
        fail(breaker)  # as two failed calls would
        calls = fake_llm.calls.get("ok", 0)
        try:
            out = await step.run(step.Input(text="How do I reverse a list?", passages=REQUEST.passages), ctx)
        finally:
            await deps.close()
        return out, fake_llm.calls.get("ok", 0) - calls

    out, calls = asyncio.run(go())
    assert out.model == "conveyor-extractive" and calls == 0
    assert ctx.usage[0].model == "conveyor-extractive" and ctx.usage[0].cost_usd == 0.0
    assert deps.fallbacks() == {"openai:ok": 1}


def test_offline_provider_has_no_breaker_and_unknown_fallbacks_are_named(tmp_path: Any) -> None:
    assert Deps(ResourceConfig(index_dir=tmp_path)).breakers() == {}
    bad = Deps(ResourceConfig(index_dir=tmp_path, llm_provider="openai", llm_fallback="gpt-5"))
    with pytest.raises(UnknownFallbackError, match="CONVEYOR_LLM_FALLBACK"):
        bad.provider()
