"""Each tenant's spend today, as every worker sees it: ``conveyor.ledger`` read whole by each process.

The ``cost-ledger`` table is partitioned by tenant and lives on whichever worker owns that
partition, but a step on any worker must know a tenant's spend before it calls a model. So each
worker process follows all partitions of ``conveyor.ledger`` itself (:class:`LedgerFollower`: an
aiokafka consumer with manual assignment and no group, from the beginning), folding the entries
per tenant per UTC day (the record's timestamp), once per request (a re-sent entry within
``dedupe_window_s`` is recognised by tenant and request id, as the ledger does). No Faust table
recovery is involved, so Tansu's wrong ``ListOffsets(latest)`` cannot cut it short: the catch-up
reads until each partition's position reaches the high watermark of the Fetch responses.

Staleness: an entry is written when its request ends, and reaches the view one fetch later
(``fetch_max_wait_ms``, 100 ms). To close the gap for this process's own requests, a gated node
adds the request's cost so far at once (:meth:`SpendView.note`, replaced by the ledger entry when it
arrives). What remains unseen are other processes' requests still in flight and the last fetch's
worth of ended ones: a tenant can overshoot its budget by the cost of the model calls that were
admitted before its spend crossed the budget (at most one call per gated node per request in flight).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any

import orjson

from streams.envelope import request_key
from streams.tansu import unread
from streams.topics import LEDGER

__all__ = ["TENANT_SPEND", "LedgerFollower", "SpendView", "utc_day"]

log = logging.getLogger(__name__)
TENANT_SPEND = "tenant-spend"  # the view as ``/state/tenant-spend`` shows it: {day: {tenant: USD}}


def utc_day(at: float) -> str:
    """The UTC date of a ``time.time()`` value: the day a budget applies to."""
    return datetime.fromtimestamp(at, tz=timezone.utc).strftime("%Y-%m-%d")


class SpendView:
    """Per-tenant spend per UTC day from ledger entries, plus this process's costs not yet in the ledger.

    In :mod:`streams.testing` the in-process ledger feeds it with :meth:`apply`; in a worker a
    :class:`LedgerFollower` does. It is ready once the ledger as it stood at start-up was read.
    """

    def __init__(self, dedupe_window_s: float = 900.0, keep_days: int = 2) -> None:
        self.dedupe_window_s = dedupe_window_s
        self.keep_days = keep_days
        self._totals: dict[str, dict[str, float]] = {}  # day -> tenant -> USD
        self._seen: OrderedDict[str, float] = OrderedDict()  # request key -> entry time (dedupe window)
        self._pending: dict[str, tuple[str, str, float, float]] = {}  # request key -> (tenant, day, USD, noted at)
        self._ready = asyncio.Event()  # bound to a loop only when first awaited
        self._is_ready = True
        self.entries = 0  # ledger entries folded (duplicates not counted)
        self.last_entry_at: float | None = None

    # -- feeding -------------------------------------------------------------------------------

    def apply(self, value: bytes | None, at: float) -> bool:
        """Fold one ``conveyor.ledger`` record written at ``at`` (seconds); False if malformed or already seen."""
        try:
            entry = orjson.loads(value or b"")
            tenant, rid = str(entry["tenant"]), str(entry["request_id"])
            cost = float(entry.get("cost_usd", 0.0))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("ignoring a malformed record on %s", LEDGER)
            return False
        key = request_key(tenant, rid)
        self._pending.pop(key, None)  # the ledger's figure replaces this process's own count
        self._expire_seen(at)
        if key in self._seen:
            return False
        self._seen[key] = at
        day = utc_day(at)
        by_tenant = self._totals.setdefault(day, {})
        by_tenant[tenant] = round(by_tenant.get(tenant, 0.0) + cost, 10)
        self._forget_old_days(day)
        self.entries += 1
        self.last_entry_at = at
        return True

    def note(self, tenant: str, key: str, cost_so_far: float, at: float) -> None:
        """This process saw request ``key`` cost ``cost_so_far`` (cumulative): count it until its entry arrives."""
        if cost_so_far <= 0 or key in self._seen:
            return
        old = self._pending.get(key)
        if old is None or cost_so_far > old[2]:
            self._pending[key] = (tenant, old[1] if old else utc_day(at), cost_so_far, at)

    # -- reading -------------------------------------------------------------------------------

    def spent(self, tenant: str, at: float) -> float:
        """USD ``tenant`` has spent on the UTC day of ``at``: ledger entries plus this process's pending costs."""
        day = utc_day(at)
        self._expire_pending(at)
        pending = sum(cost for t, d, cost, _ in self._pending.values() if t == tenant and d == day)
        return round(self._totals.get(day, {}).get(tenant, 0.0) + pending, 10)

    @property
    def data(self) -> dict[str, dict[str, float]]:
        """``{day: {tenant: USD}}`` from the ledger (``/state/tenant-spend`` shows it)."""
        return {day: dict(by_tenant) for day, by_tenant in self._totals.items()}

    # -- readiness -----------------------------------------------------------------------------

    def is_ready(self) -> bool:
        return self._is_ready

    def mark_loading(self) -> None:
        """Not ready until :meth:`mark_ready`: a follower is reading what the ledger held at start."""
        self._is_ready = False
        self._ready.clear()

    def mark_ready(self) -> None:
        self._is_ready = True
        self._ready.set()

    async def wait_ready(self) -> None:
        if not self._is_ready:
            await self._ready.wait()

    # -- bounded memory --------------------------------------------------------------------------

    def _expire_seen(self, now: float) -> None:
        while self._seen:
            key, at = next(iter(self._seen.items()))
            if now - at <= self.dedupe_window_s:
                break
            self._seen.popitem(last=False)

    def _expire_pending(self, now: float) -> None:
        stale = [k for k, (_, _, _, at) in self._pending.items() if now - at > self.dedupe_window_s]
        for key in stale:  # its entry never came (or came while this view was behind): stop counting it twice
            del self._pending[key]

    def _forget_old_days(self, day: str) -> None:
        days = sorted(self._totals)
        for old in days[: max(0, len(days) - self.keep_days)]:
            if old < day:
                del self._totals[old]


class LedgerFollower:
    """Reads every partition of ``conveyor.ledger`` into a :class:`SpendView`, from the beginning, then follows."""

    def __init__(self, bootstrap_servers: list[str], client_kwargs: dict[str, Any] | None = None,
                 view: SpendView | None = None, fetch_max_wait_ms: int = 100, catch_up_cap_s: float = 60.0,
                 retry_s: float = 2.0) -> None:
        self.servers = bootstrap_servers
        self.kwargs = dict(client_kwargs or {})
        self.view = view if view is not None else SpendView()
        self.view.mark_loading()
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.catch_up_cap_s = catch_up_cap_s
        self.retry_s = retry_s
        self.caught_up_s: float | None = None  # how long the first catch-up took
        self._consumer: Any = None

    async def run(self) -> None:
        """Catch up, then follow until cancelled (a Faust app task: cancelled when the app stops).

        No parameters: Faust passes the app to a task that takes one. A start that fails (the
        broker away) is tried again every ``retry_s``; until one succeeds the view is not ready.
        """
        try:
            while True:
                try:
                    await self.start()
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - aiokafka raises several kinds; try again
                    log.warning("spend view: reading %s failed to start (%r); retrying in %.0fs", LEDGER, exc,
                                self.retry_s)
                    await self.stop()
                    await asyncio.sleep(self.retry_s)
            await self.follow()
        finally:
            await self.stop()

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

        started = time.monotonic()
        producer = AIOKafkaProducer(bootstrap_servers=self.servers, **self.kwargs)
        await producer.start()
        try:  # asking a producer waits for the metadata (and creates the topic where the broker auto-creates)
            partitions = sorted(await producer.partitions_for(LEDGER))
        finally:
            await producer.stop()
        self._consumer = AIOKafkaConsumer(bootstrap_servers=self.servers, enable_auto_commit=False,
                                          auto_offset_reset="earliest", fetch_max_wait_ms=self.fetch_max_wait_ms,
                                          **self.kwargs)
        await self._consumer.start()
        tps = [TopicPartition(LEDGER, p) for p in partitions]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        await self._catch_up(tps, started)
        self.caught_up_s = time.monotonic() - started
        self.view.mark_ready()
        log.info("spend view: %d ledger entries read in %.2fs", self.view.entries, self.caught_up_s)

    async def _catch_up(self, tps: list[Any], started: float) -> None:
        """Read until every partition's position reaches its end as the Fetch responses report it.

        ``end_offsets`` (ListOffsets) is only a lower bound on Tansu (it answers the last batch's
        base offset + 1); the high watermark of a Fetch response is right, so polling goes on until
        the position reaches both.
        """
        ends = await self._consumer.end_offsets(tps)
        while time.monotonic() - started < self.catch_up_cap_s:
            await self._poll(300)
            if not await unread(self._consumer, tps, ends):
                return
        log.warning("spend view: %s not read to its end within %.0fs; following from here", LEDGER, self.catch_up_cap_s)

    async def follow(self) -> None:
        while True:
            try:
                await self._poll(1000)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep following through broker hiccups
                log.warning("reading %s failed (%s); retrying", LEDGER, type(exc).__name__)
                await asyncio.sleep(1.0)

    async def _poll(self, timeout_ms: int) -> None:
        batches = await self._consumer.getmany(timeout_ms=timeout_ms)
        for records in batches.values():
            for record in records:
                at = record.timestamp / 1000.0 if record.timestamp and record.timestamp > 0 else time.time()
                self.view.apply(record.value, at)

    async def stop(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()
