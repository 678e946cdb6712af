"""Running a step under its policy: per-attempt timeout, retries with backoff and jitter, deadline.

Pure asyncio with an injectable clock, sleep and random source, so it is tested without waiting.
What is retried: ``RetryableStepError``, timeouts and connection errors. What is not: a
``FatalStepError``, a ``RejectedStepError`` (the step refuses the request) and any other exception (a bug or a bad input does not get better by retrying).
The wait before a retry is the backoff, or the error's ``retry_after_s`` when that is longer (an
HTTP ``Retry-After``); a wait that would end past the deadline is not slept: the outcome is
``timeout`` at once.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Literal

from steps.base import FatalStepError, RejectedStepError, RetryableStepError
from streams.graph import Policy

__all__ = ["Outcome", "backoff_delay", "retry_delay", "run_with_policy"]

RETRYABLE: tuple[type[BaseException], ...] = (RetryableStepError, asyncio.TimeoutError, ConnectionError)


@dataclass
class Outcome:
    status: Literal["ok", "failed", "timeout", "rejected"]
    value: Any = None
    attempts: int = 0
    error: BaseException | None = None

    @property
    def error_text(self) -> str | None:
        if self.error is None:
            return None
        message = str(self.error) or "no message"
        return f"{type(self.error).__name__}: {message}"


def backoff_delay(policy: Policy, attempt: int, rand: Callable[[], float] = random.random) -> float:
    """Delay before retry number ``attempt`` (1-based): exponential, capped, with +-jitter."""
    base = min(policy.backoff_max_s, policy.backoff_s * (2 ** (attempt - 1)))
    return max(0.0, base * (1 + policy.jitter * (2 * rand() - 1)))


def retry_delay(policy: Policy, attempt: int, error: BaseException, rand: Callable[[], float] = random.random) -> float:
    """The wait before retry number ``attempt``: the backoff, or the error's ``retry_after_s`` if longer."""
    delay = backoff_delay(policy, attempt, rand)
    hint = error.retry_after_s if isinstance(error, RetryableStepError) else None
    return delay if hint is None else max(delay, hint)


async def run_with_policy(
    fn: Callable[[], Awaitable[Any]],
    policy: Policy,
    *,
    deadline: float | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    rand: Callable[[], float] = random.random,
    on_retry: Callable[[int, BaseException], None] | None = None,
) -> Outcome:
    """Call ``fn`` until it succeeds, fails fatally, runs out of retries or passes ``deadline``."""
    attempt = 0
    while True:
        attempt += 1
        timeout = policy.timeout_s
        if deadline is not None:
            left = deadline - clock()
            if left <= 0:
                return Outcome("timeout", attempts=attempt - 1, error=asyncio.TimeoutError("deadline passed"))
            timeout = min(timeout, left)
        try:
            async with asyncio.timeout(timeout):  # runs in this task: no extra task per call, unlike wait_for
                value = await fn()
            return Outcome("ok", value, attempts=attempt)
        except FatalStepError as exc:
            return Outcome("failed", attempts=attempt, error=exc)
        except RejectedStepError as exc:
            return Outcome("rejected", attempts=attempt, error=exc)
        except RETRYABLE as exc:
            error: BaseException = exc
            if isinstance(exc, asyncio.TimeoutError) and not str(exc):
                error = asyncio.TimeoutError(f"attempt {attempt} took over {timeout:.3g}s")
            if deadline is not None and clock() >= deadline:
                return Outcome("timeout", attempts=attempt, error=error)
            if attempt > policy.retries:
                return Outcome("failed", attempts=attempt, error=error)
            delay = retry_delay(policy, attempt, exc, rand)
            if deadline is not None and clock() + delay >= deadline:
                late = asyncio.TimeoutError(
                    f"deadline would pass during the {delay:.3g}s wait before attempt {attempt + 1} "
                    f"(last error: {Outcome(error=error, status='failed').error_text})"
                )
                return Outcome("timeout", attempts=attempt, error=late)
            if on_retry is not None:
                on_retry(attempt, error)
            await sleep(delay)
        except Exception as exc:  # noqa: BLE001 - anything else is a bug or bad input: no retry
            return Outcome("failed", attempts=attempt, error=exc)
