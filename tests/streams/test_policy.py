"""Policy under a fake clock: no real waiting."""

from __future__ import annotations

import asyncio
from typing import Any

from steps.base import FatalStepError, RetryableStepError
from streams.graph import Policy
from streams.policy import backoff_delay, run_with_policy


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def flaky(failures: int, error: Exception) -> Any:
    calls = {"n": 0}

    async def fn() -> str:
        calls["n"] += 1
        if calls["n"] <= failures:
            raise error
        return "done"

    return fn, calls


def run(fn: Any, policy: Policy, t: FakeTime, **kw: Any) -> Any:
    return asyncio.run(run_with_policy(fn, policy, clock=t.clock, sleep=t.sleep, rand=lambda: 0.5, **kw))


def test_retries_with_exponential_backoff_then_succeeds() -> None:
    t = FakeTime()
    fn, calls = flaky(2, RetryableStepError("503"))
    retried: list[int] = []
    out = run(fn, Policy(retries=3, backoff_s=0.5), t, on_retry=lambda n, e: retried.append(n))
    assert (out.status, out.value, out.attempts, calls["n"]) == ("ok", "done", 3, 3)
    assert t.sleeps == [0.5, 1.0] and retried == [1, 2]


def test_gives_up_after_retries() -> None:
    t = FakeTime()
    fn, calls = flaky(10, RetryableStepError("still down"))
    out = run(fn, Policy(retries=2, backoff_s=0.1), t)
    assert (out.status, out.attempts, calls["n"]) == ("failed", 3, 3)
    assert out.error_text == "RetryableStepError: still down"


def test_fatal_and_unknown_errors_are_not_retried() -> None:
    for error in (FatalStepError("bad input"), KeyError("bug")):
        t = FakeTime()
        fn, calls = flaky(1, error)
        out = run(fn, Policy(retries=5), t)
        assert (out.status, calls["n"]) == ("failed", 1) and t.sleeps == []


def test_attempt_timeout_is_retryable() -> None:
    t = FakeTime()
    calls = {"n": 0}

    async def slow_once() -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            await asyncio.sleep(5)
        return "fast"

    out = run(slow_once, Policy(timeout_s=0.05, retries=1, backoff_s=0), t)
    assert (out.status, out.value, out.attempts) == ("ok", "fast", 2)


def test_deadline_stops_retrying() -> None:
    t = FakeTime()
    fn, _ = flaky(10, RetryableStepError("down"))
    out = run(fn, Policy(retries=10, backoff_s=1.0, backoff_max_s=1.0), t, deadline=t.now + 2.5)
    assert out.status == "timeout" and out.attempts <= 4
    already_late = run(fn, Policy(), t, deadline=t.now - 1)
    assert (already_late.status, already_late.attempts) == ("timeout", 0)


def test_backoff_is_capped_and_jittered() -> None:
    p = Policy(backoff_s=1.0, backoff_max_s=4.0, jitter=0.5)
    assert backoff_delay(p, 10, rand=lambda: 0.5) == 4.0
    assert backoff_delay(p, 1, rand=lambda: 0.0) == 0.5
    assert backoff_delay(p, 1, rand=lambda: 1.0) == 1.5


def test_retry_after_is_waited_when_longer_than_the_backoff() -> None:
    t = FakeTime()
    fn, calls = flaky(1, RetryableStepError("429", retry_after_s=5.0))
    out = run(fn, Policy(retries=2, backoff_s=0.5), t)
    assert (out.status, out.value, calls["n"]) == ("ok", "done", 2)
    assert t.sleeps == [5.0]  # not the 0.5 s backoff
    fn, _ = flaky(1, RetryableStepError("429", retry_after_s=0.1))
    t = FakeTime()
    run(fn, Policy(retries=2, backoff_s=0.5), t)
    assert t.sleeps == [0.5]  # a shorter hint does not shorten the backoff


def test_retry_after_past_the_deadline_times_out_without_sleeping() -> None:
    t = FakeTime()
    fn, calls = flaky(1, RetryableStepError("429", retry_after_s=5.0))
    retried: list[int] = []
    out = run(fn, Policy(retries=3, backoff_s=0.5), t, deadline=t.now + 3.0, on_retry=lambda n, e: retried.append(n))
    assert (out.status, out.attempts, calls["n"]) == ("timeout", 1, 1)
    assert t.sleeps == [] and retried == [] and t.now == 1000.0
    assert "deadline" in (out.error_text or "") and "429" in (out.error_text or "")
