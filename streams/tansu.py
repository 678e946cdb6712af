"""Every workaround for the embedded broker (Tansu 0.6), in one place, applied only to it.

Measured in ../shared/research/broker.md and performance.md:

1. ``ListOffsets(latest)`` returns *base offset of the last batch + 1* instead of *last offset + 1*.
   Faust takes it as the changelog highwater for table recovery and stops early: tables come back
   short after a restart. Fix: take highwaters from a Fetch response's high watermark, which is
   right (:func:`true_highwaters`). Keeps producer batching (``producer_max_batch_size=1`` would
   also fix it but costs 5x throughput).
2. Every JoinGroup waits ``session_timeout/2``: Faust's 60 s default means 30 s joins. Use 6 s.
3. A long-poll Fetch is answered only at ``fetch_max_wait_ms`` even when data arrived; Faust
   hard-codes 1500 ms, which adds up to 1.5 s per hop. Use a short wait.

Detection: ``conveyor broker`` starts Tansu with the cluster id :data:`EMBEDDED_CLUSTER_ID`, and
Tansu's own default id is ``tansu_cluster``; a worker pointed at either gets these fixes, whatever
flags it was started with. ``CONVEYOR_EMBEDDED=yes|no`` overrides the detection.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any, Iterable, Mapping

__all__ = [
    "EMBEDDED_CLUSTER_ID",
    "FAUST_SETTINGS",
    "apply",
    "cluster_id",
    "is_embedded",
    "true_highwaters",
    "unread",
]

EMBEDDED_CLUSTER_ID = "conveyor-embedded"
TANSU_CLUSTER_IDS = frozenset({EMBEDDED_CLUSTER_ID, "tansu_cluster"})
FAUST_SETTINGS: dict[str, Any] = {"broker_session_timeout": 6.0, "broker_heartbeat_interval": 1.0}
FETCH_MAX_WAIT_MS = 50

_apps: weakref.WeakSet[Any] = weakref.WeakSet()
_installed = False


async def cluster_id(bootstrap_servers: list[str], timeout_s: float = 10.0, **client_kwargs: Any) -> str | None:
    """The cluster id the broker reports in its Metadata response (None if it reports none)."""
    from aiokafka.client import AIOKafkaClient
    from aiokafka.protocol.metadata import MetadataRequest

    client = AIOKafkaClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=int(timeout_s * 1000), **client_kwargs)
    try:
        await asyncio.wait_for(client.bootstrap(), timeout_s)
        node = client.get_random_node()
        if node is None:
            return None
        response = await asyncio.wait_for(client.send(node, MetadataRequest([])), timeout_s)
        return getattr(response, "cluster_id", None)
    finally:
        await client.close()


async def is_embedded(mode: str, bootstrap_servers: list[str], **client_kwargs: Any) -> bool:
    """Whether to apply the workarounds: ``yes``/``no`` as told, ``auto`` by the cluster id."""
    if mode in ("yes", "no"):
        return mode == "yes"
    return (await cluster_id(bootstrap_servers, **client_kwargs)) in TANSU_CLUSTER_IDS


async def unread(consumer: Any, partitions: Iterable[Any], listed_ends: Mapping[Any, int]) -> list[Any]:
    """The partitions an assigned aiokafka ``consumer`` has not yet read to their true end.

    ``listed_ends`` are ``end_offsets`` (ListOffsets), only a lower bound on Tansu; the end is the
    larger of that and the high watermark the fetch responses report. A partition with records whose
    high watermark no fetch has reported yet counts as unread.
    """
    out = []
    for tp in partitions:
        highwater = consumer.highwater(tp)
        if (await consumer.position(tp) < max(listed_ends[tp], highwater or 0)
                or (highwater is None and listed_ends[tp] > 0)):
            out.append(tp)
    return out


async def true_highwaters(bootstrap_servers: list[str], partitions: Iterable[Any], **client_kwargs: Any) -> dict[Any, int]:
    """Highwater per partition from the Fetch response (correct on Tansu), not from ListOffsets.

    ``partitions`` may be Faust ``TP``s or aiokafka ``TopicPartition``s; keys come back as given.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    given = {TopicPartition(tp.topic, tp.partition): tp for tp in partitions}
    if not given:
        return {}
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False, **client_kwargs)
    await consumer.start()
    try:
        consumer.assign(list(given))
        listed = await consumer.end_offsets(list(given))
        out: dict[Any, int] = {}
        for atp, tp in given.items():
            end = listed[atp]
            if not end:
                out[tp] = end
                continue
            consumer.seek(atp, end - 1)  # inside the last batch: any fetch response carries the real HW
            await consumer.getmany(atp, timeout_ms=2000)
            out[tp] = max(end, consumer.highwater(atp) or 0)
        return out
    finally:
        await consumer.stop()


def _install() -> None:
    global _installed
    if _installed:
        return
    from faust.transport.drivers import aiokafka as driver

    thread_cls = driver.AIOKafkaConsumerThread
    original_highwaters = thread_cls._highwaters
    original_create = thread_cls._create_worker_consumer

    async def _highwaters(self: Any, partitions: list[Any]) -> Mapping[Any, int]:
        if self.app not in _apps or self.consumer.in_transaction:
            return await original_highwaters(self, partitions)
        servers = [f"{u.host}:{u.port or 9092}" for u in self.app.conf.broker]
        return await true_highwaters(servers, partitions)

    def _create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = original_create(self, transport)
        if self.app in _apps:
            consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer

    thread_cls._highwaters = _highwaters  # type: ignore[method-assign]
    thread_cls._create_worker_consumer = _create_worker_consumer  # type: ignore[method-assign]
    _installed = True


def apply(app: Any) -> None:
    """Give ``app`` the embedded-broker fixes (the patches act only on registered apps)."""
    _install()
    _apps.add(app)
