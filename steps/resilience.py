"""Keeping a failing or hanging dependency from taking the step down with it.

Three small pieces, pure asyncio (no Kafka, no metrics library; ``streams`` reads their state):

* :class:`CircuitBreaker`: after ``failure_threshold`` consecutive transient failures the circuit
  opens and calls fail fast with :class:`CircuitOpenError`; after ``reset_after_s`` one probe call
  is let through (half-open): it closes the circuit if it succeeds and opens it again if it fails.
* :class:`Bulkhead`: at most ``max_concurrent`` calls in flight; a call that gets no slot within
  ``acquire_timeout_s`` fails fast with :class:`BulkheadFullError`. Hung calls to one provider then
  hold at most that many of the step's concurrency slots, not all of them.
* :class:`ResilientProvider`: a :class:`~steps.providers.Provider` wrapping another behind a breaker
  and a bulkhead, answering from a fallback provider (when one is given) while either refuses.

Only transient failures count against a provider (``RetryableStepError``, timeouts, connection
errors). A ``FatalStepError`` (an HTTP 400) is the request's fault: the provider did answer.

Errors::

    RetryableStepError
    ├── CircuitOpenError    the provider failed repeatedly: failing fast until the next probe
    └── BulkheadFullError   every slot to the provider is taken: failing fast instead of queueing
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Literal

from steps.base import FatalStepError, RetryableStepError
from steps.providers import ChatReply, Completion, GenerationRequest, LLMNotConfiguredError, Provider

__all__ = [
    "Bulkhead",
    "BulkheadFullError",
    "CircuitBreaker",
    "CircuitOpenError",
    "CircuitState",
    "ResilientProvider",
]

CircuitState = Literal["closed", "half_open", "open"]
STATE_VALUES: dict[CircuitState, int] = {"closed": 0, "half_open": 1, "open": 2}
TRANSIENT: tuple[type[BaseException], ...] = (RetryableStepError, TimeoutError, ConnectionError)


class CircuitOpenError(RetryableStepError):
    """The provider's circuit is open: calls fail fast until the next probe (see the message for when).

    Configure a fallback (``CONVEYOR_LLM_FALLBACK=extractive``) to answer meanwhile, and look at the
    provider: the circuit opened because its last calls failed or timed out one after another.
    """


class BulkheadFullError(RetryableStepError):
    """Every slot to the provider stayed taken for the whole wait: the call was refused, not queued.

    The provider is slow or hanging. Raise ``CONVEYOR_LLM_MAX_CONCURRENCY`` only if it can take more.
    """


class CircuitBreaker:
    """Closed → open after N consecutive transient failures → half-open after ``reset_after_s``.

    In half-open exactly one call at a time is the probe; the others fail fast. Results of calls that
    started before the circuit opened are ignored once it is open: only the probe decides.
    :attr:`value` is the state as a number for a gauge (0 closed, 1 half-open, 2 open).
    """

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_after_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        name: str = "provider",
    ) -> None:
        if failure_threshold < 1 or reset_after_s <= 0:
            raise ValueError(
                f"circuit breaker for {name}: failure_threshold must be >= 1 and reset_after_s > 0 "
                f"(got {failure_threshold}, {reset_after_s})"
            )
        self.failure_threshold = failure_threshold
        self.reset_after_s = reset_after_s
        self.clock = clock
        self.name = name
        self.failures = 0  # consecutive, while closed
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> CircuitState:
        if self._opened_at is None:
            return "closed"
        return "half_open" if self.clock() >= self._opened_at + self.reset_after_s else "open"

    @property
    def value(self) -> int:
        return STATE_VALUES[self.state]

    def open_error(self) -> CircuitOpenError:
        """The error a call refused now gets: which provider, and when it will be probed again."""
        if self._opened_at is None:
            return CircuitOpenError(f"circuit for {self.name} is closed")  # never raised: for completeness
        wait = max(0.0, self._opened_at + self.reset_after_s - self.clock())
        when = f"next probe in {wait:.1f}s" if wait > 0 else "a probe call is in flight"
        return CircuitOpenError(
            f"circuit for {self.name} is open ({self.failure_threshold} calls in a row failed or timed out, "
            f"or the last probe did): failing fast, {when} "
            "(set CONVEYOR_LLM_FALLBACK=extractive to answer offline meanwhile)"
        )

    @contextmanager
    def call(self) -> Iterator[None]:
        """Guard one call: raises :class:`CircuitOpenError` now, or records how the call ended.

        A sync context manager on purpose: ``with breaker.call(): await ...`` works in a coroutine.
        """
        probe = self._admit()
        try:
            yield
        except (BulkheadFullError, CircuitOpenError):  # refused before reaching the provider
            self._release(probe)
            raise
        except TRANSIENT:
            self._failure(probe)
            raise
        except FatalStepError:  # the provider answered; the request was at fault
            self._success(probe)
            raise
        except BaseException:  # cancelled, or a bug: says nothing about the provider
            self._release(probe)
            raise
        self._success(probe)

    def _admit(self) -> bool:
        """Whether the admitted call is the half-open probe; raises when no call may go now."""
        state = self.state
        if state == "closed":
            return False
        if state == "half_open" and not self._probing:
            self._probing = True
            return True
        raise self.open_error()

    def _success(self, probe: bool) -> None:
        if probe:
            self._probing = False
            self._opened_at = None
            self.failures = 0
        elif self._opened_at is None:
            self.failures = 0

    def _failure(self, probe: bool) -> None:
        if probe:
            self._probing = False
            self._opened_at = self.clock()
        elif self._opened_at is None:
            self.failures += 1
            if self.failures >= self.failure_threshold:
                self._opened_at = self.clock()
                self.failures = 0

    def _release(self, probe: bool) -> None:
        if probe:
            self._probing = False


class Bulkhead:
    """At most ``max_concurrent`` calls in flight; waiting longer than ``acquire_timeout_s`` fails fast.

    Waiters are served first come, first served. Not bound to one event loop (like the HTTP
    provider's sessions), so one instance serves tests that each run their own loop.
    """

    def __init__(self, max_concurrent: int, acquire_timeout_s: float, name: str = "provider") -> None:
        if max_concurrent < 1 or acquire_timeout_s < 0:
            raise ValueError(
                f"bulkhead for {name}: max_concurrent must be >= 1 and acquire_timeout_s >= 0 "
                f"(got {max_concurrent}, {acquire_timeout_s})"
            )
        self.max_concurrent = max_concurrent
        self.acquire_timeout_s = acquire_timeout_s
        self.name = name
        self.in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot for the body; raises :class:`BulkheadFullError` when none frees in time."""
        await self._acquire()
        try:
            yield
        finally:
            self._release()

    async def _acquire(self) -> None:
        if self.in_flight < self.max_concurrent and not self._waiters:
            self.in_flight += 1
            return
        if self.acquire_timeout_s > 0:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout(self.acquire_timeout_s):
                    await waiter
                return  # the releasing call handed its slot over
            except BaseException as exc:
                if waiter.done() and not waiter.cancelled():
                    self._release()  # the slot arrived as the wait ended: pass it on
                else:
                    waiter.cancel()
                if not isinstance(exc, TimeoutError):
                    raise
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        raise BulkheadFullError(
            f"all {self.max_concurrent} slots to {self.name} stayed taken for {self.acquire_timeout_s:.3g}s: "
            "the provider is slow or hanging (raise CONVEYOR_LLM_MAX_CONCURRENCY only if it can take more)"
        )

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot goes to the waiter: in_flight stays the same
                return
        self.in_flight -= 1


class ResilientProvider:
    """A provider behind a circuit breaker and a bulkhead, with an optional fallback provider.

    While the breaker is open or the bulkhead full, the fallback answers (its ``Completion.model``
    says which model did, so usage and spans show it) or, without one, the fast error is raised.
    Failures of an admitted call are raised as they are: the step's policy retries them.
    ``timeout_s`` bounds each call for a primary that has no timeout of its own.
    """

    def __init__(
        self,
        primary: Provider,
        breaker: CircuitBreaker,
        bulkhead: Bulkhead,
        fallback: Provider | None = None,
        timeout_s: float | None = None,
    ) -> None:
        self.primary = primary
        self.model = primary.model
        self.breaker = breaker
        self.bulkhead = bulkhead
        self.fallback = fallback
        self.timeout_s = timeout_s
        self.fallbacks = 0  # answers the fallback gave instead of the primary

    async def generate(self, request: GenerationRequest) -> Completion:
        try:
            with self.breaker.call():
                async with self.bulkhead.slot():
                    return await self._primary(request)
        except (CircuitOpenError, BulkheadFullError):
            if self.fallback is None:
                raise
            self.fallbacks += 1
            return await self.fallback.generate(request)

    async def _primary(self, request: GenerationRequest) -> Completion:
        if self.timeout_s is None:
            return await self.primary.generate(request)
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self.primary.generate(request)
        except TimeoutError as exc:
            raise RetryableStepError(f"{self.breaker.name} took over {self.timeout_s:.3g}s") from exc

    async def chat(self, messages: list[dict[str, Any]], **kwargs: Any) -> ChatReply:
        """A chat call to the primary behind the breaker and bulkhead (no fallback: it cannot call tools)."""
        chat = getattr(self.primary, "chat", None)
        if chat is None:
            raise LLMNotConfiguredError(f"{self.breaker.name}")
        with self.breaker.call():
            async with self.bulkhead.slot():
                if self.timeout_s is None:
                    return await chat(messages, **kwargs)  # type: ignore[no-any-return]
                try:
                    async with asyncio.timeout(self.timeout_s):
                        return await chat(messages, **kwargs)  # type: ignore[no-any-return]
                except TimeoutError as exc:
                    raise RetryableStepError(f"{self.breaker.name} took over {self.timeout_s:.3g}s") from exc

    async def close(self) -> None:
        await self.primary.close()
        if self.fallback is not None:
            await self.fallback.close()
