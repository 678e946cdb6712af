"""A small Kafka client for Conveyor's topics: publish requests, wait for results, read spans.

Any Kafka client can do the same (see README); this one backs the CLI and the tests.
"""

from __future__ import annotations

import time
from typing import Any, AsyncIterator, Callable, Iterable

import orjson

from streams.app import Settings
from streams.envelope import Request, Result, new_request_id, session_key
from streams.errors import BrokerUnreachableError, MessageTooLargeError, ResultTimeoutError
from streams.tansu import unread
from streams.topics import REQUESTS, RESULTS, TRACES

__all__ = ["Client"]


def request_key(request: dict[str, Any]) -> bytes | None:
    """The session key (``streams.envelope.session_key``): one session's requests stay on one partition."""
    tenant: str = request["tenant"] if isinstance(request.get("tenant"), str) else "default"
    session = request.get("session") if isinstance(request.get("session"), str) else None
    rid = request.get("id") if isinstance(request.get("id"), str) else None
    if session is None and rid is None:
        return None
    return session_key(tenant, session, rid).encode()


class Client:
    """Async context manager holding one producer; consumers are made per read."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: Any = None

    def _check_size(self, value: bytes, request_id: str | None) -> None:
        limit = self.settings.max_message_bytes
        if len(value) > limit:
            raise MessageTooLargeError(
                f"request {request_id or '(no id)'} is {len(value):,} bytes, over the {limit:,}-byte limit "
                "(CONVEYOR_MAX_MESSAGE_BYTES); send less text or metadata, or raise the limit on the broker and workers"
            )

    async def __aenter__(self) -> Client:
        from aiokafka import AIOKafkaProducer

        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap_servers(), acks="all", linger_ms=5, **self.settings.client_kwargs()
        )
        try:
            await self._producer.start()
        except BaseException:
            await self._producer.stop()  # a producer that failed to start still holds a connection task
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._producer.stop()

    async def publish(self, requests: Iterable[dict[str, Any]], on_sent: Callable[[int], None] | None = None) -> list[str]:
        """Publish requests (an id is added where missing); returns their ids in order."""
        futures, ids = [], []
        for raw in requests:
            request = dict(raw)
            request.setdefault("id", new_request_id())
            Request.model_validate(request)  # fail early on the client side, with the field named
            ids.append(request["id"])
            value = orjson.dumps(request)
            self._check_size(value, request["id"])
            futures.append(await self._producer.send(REQUESTS, value, key=request_key(request)))
        for i, fut in enumerate(futures, 1):
            await fut
            if on_sent:
                on_sent(i)
        return ids

    async def publish_raw(self, value: bytes, key: bytes | None = None) -> None:
        """Publish bytes as they are (tests of malformed input); the size limit still applies."""
        self._check_size(value, None)
        await self._producer.send_and_wait(REQUESTS, value, key=key)

    async def send(self, topic: str, value: bytes, key: bytes | None = None,
                   headers: list[tuple[str, bytes]] | None = None) -> None:
        """Produce one record to any topic and wait for the broker's acknowledgement."""
        self._check_size(value, None)
        await self._producer.send_and_wait(topic, value, key=key, headers=headers)

    async def partitions(self, topic: str) -> list[Any]:
        """The topic's partitions, asking by name (which creates it where the broker auto-creates topics)."""
        from aiokafka import TopicPartition

        return [TopicPartition(topic, p) for p in sorted(await self._producer.partitions_for(topic))]

    async def positions(self, topic: str) -> dict[Any, int]:
        """Current end offsets of ``topic``; read from here to see only what comes next."""
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.bootstrap_servers(), **self.settings.client_kwargs())
        await consumer.start()
        try:
            return dict(await consumer.end_offsets(await self.partitions(topic)))
        finally:
            await consumer.stop()

    async def read(self, topic: str, start: dict[Any, int] | None = None, timeout_s: float | None = None) -> AsyncIterator[tuple[bytes | None, bytes]]:
        """(key, value) of ``topic`` from ``start`` (None: from the beginning), until ``timeout_s``."""
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap_servers(), enable_auto_commit=False,
            fetch_max_wait_ms=100, **self.settings.client_kwargs(),
        )
        await consumer.start()
        try:
            if start is None:
                start = {tp: 0 for tp in await self.partitions(topic)}
            consumer.assign(list(start))
            for tp, offset in start.items():
                consumer.seek(tp, offset)
            deadline = None if timeout_s is None else time.monotonic() + timeout_s
            while deadline is None or time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=200)
                for records in batches.values():
                    for record in records:
                        yield record.key, record.value
        finally:
            await consumer.stop()

    async def read_to_end(self, topic: str, timeout_s: float = 15.0) -> list[tuple[bytes | None, bytes]]:
        """Every (key, value) of ``topic`` up to its current end; ``[]`` for a topic that does not exist (not created).

        The end is the larger of ``end_offsets`` and the high watermark of the fetch responses (on Tansu,
        ListOffsets answers the last batch's base offset + 1). Not reaching it within ``timeout_s`` is an error.
        """
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap_servers(), enable_auto_commit=False,
            fetch_max_wait_ms=100, **self.settings.client_kwargs(),
        )
        out: list[tuple[bytes | None, bytes]] = []
        await consumer.start()
        try:
            if topic not in await consumer.topics():
                return out  # asking for its partitions would create it, with the broker's default count
            tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
            ends = await consumer.end_offsets(tps)
            consumer.assign(tps)
            for tp in tps:
                consumer.seek(tp, 0)
            deadline = time.monotonic() + timeout_s
            while True:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    out.extend((record.key, record.value) for record in records)
                behind = await unread(consumer, tps, ends)
                if not behind:
                    return out
                if time.monotonic() >= deadline:
                    raise BrokerUnreachableError(
                        f"{topic} could not be read to its end within {timeout_s:.0f}s ({len(behind)} partition(s) "
                        "behind); is the broker overloaded? try again"
                    )
        finally:
            await consumer.stop()

    async def results(
        self, ids: Iterable[str], start: dict[Any, int] | None, timeout_s: float, tenants: dict[str, str] | None = None,
        pending: bool = False,
    ) -> dict[str, Result]:
        """Wait for one result per id (the first seen wins); raises ResultTimeoutError on timeout.

        ``tenants`` maps ids to the tenant that sent them: a result for the same id from another
        tenant (ids are chosen by clients) is not taken for this one. A ``pending_approval`` notice is
        not a final result: it is returned only when ``pending`` is true (else the wait goes on).
        """
        wanted = set(ids)
        found: dict[str, Result] = {}
        parked: dict[str, str] = {}  # id -> the approval node it waits at
        async for _, value in self.read(RESULTS, start, timeout_s):
            result = Result.model_validate_json(value)
            if tenants is not None and result.tenant is not None and tenants.get(result.id, result.tenant) != result.tenant:
                continue
            if result.status == "pending_approval" and not pending:
                if result.id in wanted:
                    parked[result.id] = str(result.output.get("approval", {}).get("node", "an approval node"))
                continue
            if result.id in wanted and result.id not in found:
                found[result.id] = result
                if len(found) == len(wanted):
                    return found
        missing = sorted(wanted - set(found))
        waiting = [rid for rid in missing if rid in parked]
        if waiting:
            raise ResultTimeoutError(
                f"{len(waiting)} of {len(wanted)} requests still wait for a person after {timeout_s:.0f}s (first: "
                f"{waiting[0]} at {parked[waiting[0]]}); answer with `conveyor approve {waiting[0]} --yes` (or --no), "
                "or wait longer (--timeout)"
            )
        raise ResultTimeoutError(
            f"{len(missing)} of {len(wanted)} results did not arrive within {timeout_s:.0f}s (first: {missing[:3]}); "
            "is a worker running against this broker (`conveyor worker`)? Check its log."
        )

    async def spans(self, trace_ids: Iterable[str], start: dict[Any, int] | None, timeout_s: float, expect: int) -> list[dict[str, Any]]:
        """Spans of the given traces, read until ``expect`` spans or ``timeout_s``."""
        wanted = set(trace_ids)
        out: list[dict[str, Any]] = []
        async for _, value in self.read(TRACES, start, timeout_s):
            span = orjson.loads(value)
            if span.get("trace_id") in wanted:
                out.append(span)
                if len(out) >= expect:
                    break
        return out
