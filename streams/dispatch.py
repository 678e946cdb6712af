"""Concurrency inside one agent: many messages in flight, but one session's messages in order.

Faust's own ``concurrency=N`` runs N actors over one stream and loses per-partition order
(../shared/research/performance.md Q3). Conveyor runs one actor that hands each event to a
task: up to ``limit`` tasks run at once, and a task waits for the previous task of the same key
(the session key), so conversation history sees turns in order. Events are acked by their task
when it is done; Faust commits only the contiguous acked prefix, so a crash re-delivers, never loses.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from typing import Any, Awaitable, Callable, Hashable

__all__ = ["KeyedDispatcher", "sleep_without_slot"]

log = logging.getLogger(__name__)
_current: contextvars.ContextVar[KeyedDispatcher | None] = contextvars.ContextVar("conveyor_dispatcher", default=None)


async def sleep_without_slot(seconds: float) -> None:
    """Sleep (a retry's backoff) without holding a concurrency slot of the dispatcher running this job.

    The job's own key stays blocked (its session's next message must wait: order), but other keys,
    including other sessions on the same partition, take the slot meanwhile.
    """
    dispatcher = _current.get()
    if dispatcher is None:
        await asyncio.sleep(seconds)
        return
    dispatcher._slots.release()
    try:
        await asyncio.sleep(seconds)
    finally:
        await dispatcher._slots.acquire()


class KeyedDispatcher:
    """Runs submitted jobs with at most ``limit`` running at once and per-key submission order.

    A job waiting for its key's previous job holds no running slot (only one of ``backlog``
    admission places, which bounds memory), and a job in a retry's backoff gives its slot back
    (:func:`sleep_without_slot`): one slow or retrying session never stalls the others.
    """

    def __init__(self, limit: int, backlog: int | None = None) -> None:
        self.limit = limit
        self._slots = asyncio.Semaphore(limit)
        self._admitted = asyncio.Semaphore(backlog or limit * 4)
        self._tails: dict[Hashable, asyncio.Task[Any]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.running = 0

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def submit(self, key: Hashable, job: Callable[[], Awaitable[Any]]) -> None:
        """Wait for an admission place, then start ``job`` after the previous job of ``key``."""
        await self._admitted.acquire()
        previous = self._tails.get(key)
        task = asyncio.ensure_future(self._run(key, previous, job))
        self._tails[key] = task
        self._tasks.add(task)

    async def _run(self, key: Hashable, previous: asyncio.Task[Any] | None, job: Callable[[], Awaitable[Any]]) -> None:
        me = asyncio.current_task()
        _current.set(self)
        try:
            if previous is not None and not previous.done():
                await asyncio.wait([previous])
            async with self._slots:
                self.running += 1
                try:
                    await job()
                finally:
                    self.running -= 1
        except Exception:  # noqa: BLE001 - jobs handle their own errors; this is the last guard
            log.exception("job for key %r raised", key)
        finally:
            self._admitted.release()
            if self._tails.get(key) is me:
                del self._tails[key]
            self._tasks.discard(me)  # type: ignore[arg-type]

    async def drain(self) -> None:
        """Wait until every submitted job has finished."""
        while self._tasks:
            await asyncio.wait(list(self._tasks))
