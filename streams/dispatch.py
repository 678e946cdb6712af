"""Concurrency inside one agent: many messages in flight, but one session's messages in order.

Faust's own ``concurrency=N`` runs N actors over one stream and loses per-partition order
(../shared/research/performance.md Q3). Conveyor runs one actor that hands each event to a
task: up to ``limit`` tasks run at once, and a task waits for the previous task of the same key
(the session key), so conversation history sees turns in order. Events are acked by their task
when it is done; Faust commits only the contiguous acked prefix, so a crash re-delivers, never loses.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Hashable

__all__ = ["KeyedDispatcher"]

log = logging.getLogger(__name__)


class KeyedDispatcher:
    """Runs submitted jobs with at most ``limit`` at once and per-key submission order."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._slots = asyncio.Semaphore(limit)
        self._tails: dict[Hashable, asyncio.Task[Any]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def submit(self, key: Hashable, job: Callable[[], Awaitable[Any]]) -> None:
        """Wait for a free slot, then start ``job`` after the previous job of ``key``."""
        await self._slots.acquire()
        previous = self._tails.get(key)
        task = asyncio.ensure_future(self._run(key, previous, job))
        self._tails[key] = task
        self._tasks.add(task)

    async def _run(self, key: Hashable, previous: asyncio.Task[Any] | None, job: Callable[[], Awaitable[Any]]) -> None:
        me = asyncio.current_task()
        try:
            if previous is not None and not previous.done():
                await asyncio.wait([previous])
            await job()
        except Exception:  # noqa: BLE001 - jobs handle their own errors; this is the last guard
            log.exception("job for key %r raised", key)
        finally:
            self._slots.release()
            if self._tails.get(key) is me:
                del self._tails[key]
            self._tasks.discard(me)  # type: ignore[arg-type]

    async def drain(self) -> None:
        """Wait until every submitted job has finished."""
        while self._tasks:
            await asyncio.wait(list(self._tasks))
