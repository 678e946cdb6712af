"""Which pipelines are served, by any worker: announcements on ``conveyor.pipelines``.

Ingress must not forward a request to a topic nobody reads (measured: requests naming ``echo``
sent to a worker serving only ``support`` vanished), nor reject a pipeline that *another* worker
serves. Every worker announces the pipelines it runs (key ``<pipeline>/<worker>``, value
:class:`Announcement`) when it starts, again every ``every_s`` seconds, and a ``gone`` record when
it stops; every worker reads the topic from the beginning and follows it. A pipeline is served
while some announcement for it is younger than ``ttl_s`` and not gone. The topic is compacted on
Kafka (Tansu does not compact; announcements are small).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from streams.app import Settings

__all__ = ["Announcement", "PIPELINES_TOPIC", "PipelineDirectory"]

log = logging.getLogger(__name__)
PIPELINES_TOPIC = "conveyor.pipelines"


class Announcement(BaseModel):
    pipeline: str
    entry: str
    worker: str
    at: float
    gone: bool = False
    deadline_ms: int | None = None  # the pipeline's default deadline for requests without their own


class PipelineDirectory:
    """Announces this worker's pipelines and keeps the table of every worker's, current in the background."""

    def __init__(self, settings: Settings, worker: str, local: dict[str, str], ttl_s: float = 120.0, every_s: float = 30.0,
                 deadlines: dict[str, int | None] | None = None) -> None:
        self.settings = settings
        self.worker = worker
        self.local = dict(local)  # pipeline -> entry node, served by this worker
        self.deadlines = dict(deadlines or {})  # pipeline -> its default deadline_ms (None: the setting's)
        self.ttl_s = ttl_s
        self.every_s = every_s
        self._seen: dict[tuple[str, str], Announcement] = {}
        self._producer: Any = None
        self._consumer: Any = None
        self._tasks: list[asyncio.Task[None]] = []

    def entry_for(self, pipeline: str, now: float | None = None) -> str | None:
        """The entry node of ``pipeline`` if this or another live worker serves it, else None."""
        if pipeline in self.local:
            return self.local[pipeline]
        now = time.time() if now is None else now
        live = [a for (p, _), a in self._seen.items() if p == pipeline and not a.gone and now - a.at < self.ttl_s]
        return max(live, key=lambda a: a.at).entry if live else None

    def deadline_for(self, pipeline: str, now: float | None = None) -> int | None:
        """The pipeline's own default ``deadline_ms`` (its file's ``deadline_ms:``), as announced; None if it has none."""
        if pipeline in self.local:
            return self.deadlines.get(pipeline)
        now = time.time() if now is None else now
        live = [a for (p, _), a in self._seen.items() if p == pipeline and not a.gone and now - a.at < self.ttl_s]
        return max(live, key=lambda a: a.at).deadline_ms if live else None

    def served(self, now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        names = set(self.local) | {p for (p, _), a in self._seen.items() if not a.gone and now - a.at < self.ttl_s}
        return sorted(names)

    def apply(self, value: bytes | None) -> None:
        """Fold one record of the topic into the table (ignoring anything malformed)."""
        if not value:
            return
        try:
            a = Announcement.model_validate(orjson.loads(value))
        except (orjson.JSONDecodeError, ValidationError):
            log.warning("ignoring a malformed record on %s", PIPELINES_TOPIC)
            return
        key = (a.pipeline, a.worker)
        if key not in self._seen or self._seen[key].at <= a.at:
            self._seen[key] = a

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

        servers = self.settings.bootstrap_servers()
        kwargs = self.settings.client_kwargs()
        await self._declare(servers, kwargs)
        self._producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all", **kwargs)
        await self._producer.start()
        await self.announce()
        self._consumer = AIOKafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False, fetch_max_wait_ms=200, **kwargs)
        await self._consumer.start()
        parts = await self._producer.partitions_for(PIPELINES_TOPIC)
        tps = [TopicPartition(PIPELINES_TOPIC, p) for p in sorted(parts)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        await self._catch_up()
        self._tasks = [asyncio.ensure_future(self._follow()), asyncio.ensure_future(self._heartbeat())]

    async def _declare(self, servers: list[str], kwargs: dict[str, Any]) -> None:
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic
        from aiokafka.errors import KafkaError

        admin = AIOKafkaAdminClient(bootstrap_servers=servers, **kwargs)
        await admin.start()
        try:
            topic = NewTopic(PIPELINES_TOPIC, self.settings.partitions, self.settings.replication_factor,
                             topic_configs={"cleanup.policy": "compact"})
            await admin.create_topics([topic])
        except KafkaError:
            pass  # it exists already (or the broker auto-creates it on first use)
        finally:
            await admin.close()

    async def _catch_up(self, quiet_polls: int = 2, cap_s: float = 10.0) -> None:
        """Read what is on the topic now: until two polls in a row bring nothing (bounded)."""
        deadline = time.monotonic() + cap_s
        quiet = 0
        while quiet < quiet_polls and time.monotonic() < deadline:
            batches = await self._consumer.getmany(timeout_ms=300)
            quiet = 0 if batches else quiet + 1
            for records in batches.values():
                for record in records:
                    self.apply(record.value)

    async def _follow(self) -> None:
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=1000)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep following through broker hiccups
                log.warning("reading %s failed (%s); retrying", PIPELINES_TOPIC, type(exc).__name__)
                await asyncio.sleep(1.0)
                continue
            for records in batches.values():
                for record in records:
                    self.apply(record.value)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            try:
                await self.announce()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - announce again next round
                log.warning("announcing pipelines failed (%s)", type(exc).__name__)

    async def announce(self, gone: bool = False) -> None:
        now = time.time()
        for pipeline, entry in self.local.items():
            a = Announcement(pipeline=pipeline, entry=entry, worker=self.worker, at=now, gone=gone,
                             deadline_ms=self.deadlines.get(pipeline))
            self.apply(orjson.dumps(a.model_dump()))
            await self._producer.send_and_wait(PIPELINES_TOPIC, orjson.dumps(a.model_dump()), key=f"{pipeline}/{self.worker}".encode())

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._producer is not None:
            try:
                await self.announce(gone=True)
            except Exception:  # noqa: BLE001 - best effort: the announcement also ages out
                pass
            await self._producer.stop()
        if self._consumer is not None:
            await self._consumer.stop()
