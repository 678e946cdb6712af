"""Producing from an app: forwards, results, dead letters and spans, each bounded in size and scrubbed.

Nothing vanishes: a dead letter too large to carry whole is sent truncated (size, SHA-256 and the
head of the original bytes, with where it came from), and sending one is retried until the broker
takes it. A message is acked only after its dead letter was acknowledged, so a broker outage
stalls a partition (visible as lag) instead of committing past a message nobody handled.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal, Protocol

import orjson

from streams.app import Settings
from streams.envelope import DeadLetter, Result, encode
from streams.metrics import Metrics
from streams.privacy import Scrubber
from streams.topics import DLQ, RESULTS, TRACES
from streams.tracing import StepTrace

__all__ = ["HEAD_BYTES", "Outputs", "TooLargeError"]

log = logging.getLogger(__name__)
HEAD_BYTES = 2048  # of a truncated dead letter's original value
RETRY_MAX_S = 30.0


class TooLargeError(ValueError):
    """A message Conveyor would produce is over CONVEYOR_MAX_MESSAGE_BYTES; raise the limit (and the broker's) or send less."""


def _key(value: str | None) -> bytes | None:
    return value.encode("utf-8") if value is not None else None


class Producer(Protocol):
    """Where records go: Faust topics in a worker (``faust_adapter.FaustProducer``), a list in ``streams.testing``."""

    def topic(self, name: str) -> None: ...

    async def declare(self) -> None: ...

    async def send(self, name: str, key: bytes | None, value: bytes) -> asyncio.Future[Any]: ...


class Outputs:
    """The topics one app produces to; every send is awaited by the caller before its input is acked."""

    def __init__(self, producer: Producer, settings: Settings, metrics: Metrics, worker: str) -> None:
        self.producer = producer
        self.settings = settings
        self.metrics = metrics
        self.worker = worker
        self.scrub = Scrubber(settings.store_raw_pii)

    @property
    def limit(self) -> int:
        return self.settings.max_message_bytes

    def topic(self, name: str) -> None:
        """Declare that this app produces to ``name`` (created at start-up where the broker needs it)."""
        self.producer.topic(name)

    async def declare(self) -> None:
        await self.producer.declare()

    def check_size(self, what: str, value: bytes) -> None:
        if len(value) > self.limit:
            raise TooLargeError(
                f"{what} is {len(value):,} bytes, over CONVEYOR_MAX_MESSAGE_BYTES={self.limit:,}"
            )

    async def send(self, name: str, key: str | None, value: bytes) -> asyncio.Future[Any]:
        """Hand a record to the producer; returns the delivery future (await it before acking the input)."""
        return await self.producer.send(name, _key(key), value)

    async def send_and_wait(self, name: str, key: str | None, value: bytes) -> None:
        await (await self.send(name, key, value))

    async def result(self, pipeline: str, result: Result) -> asyncio.Future[Any]:
        if result.error:
            result.error = self.scrub.text(result.error)
        value = encode(result)
        if len(value) > self.limit:  # a huge answer or output: the request still gets its one result
            error = f"the result was {len(value):,} bytes, over CONVEYOR_MAX_MESSAGE_BYTES={self.limit:,}"
            result = Result(id=result.id, tenant=result.tenant, status="failed", route=result.route, usage=result.usage,
                            latency_ms=result.latency_ms, trace_id=result.trace_id, error=error)
            value = encode(result)
        if result.status != "pending_approval":  # a status notice, not the end of the request
            self.metrics.request_latency.labels(pipeline, result.status).observe(result.latency_ms / 1000)
        return await self.send(RESULTS, result.id, value)

    def letter(
        self, message: Any, pipeline: str | None, step: str, error: BaseException | str, attempts: int, request_id: str | None
    ) -> DeadLetter:
        """The dead letter for ``message``: scrubbed, and truncated when the whole would be too large."""
        raw: bytes = message.value or b""
        size, digest = DeadLetter.fingerprint(raw)
        value, encoding = DeadLetter.text_of(raw)
        kinds: list[str] = []
        if encoding == "utf-8":
            value, kinds = self.scrub.text_and_kinds(value)
        error_class = type(error).__name__ if isinstance(error, BaseException) else "Error"
        letter = DeadLetter(
            value=value,
            value_encoding=encoding,
            key=message.key.decode("utf-8", "replace")[:1000] if message.key else None,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            pipeline=pipeline,
            step=step,
            request_id=request_id[:200] if request_id else None,
            error_class=error_class,
            error=self.scrub.text(str(error))[:4000],
            attempts=attempts,
            size=size,
            sha256=digest,
            redacted=kinds,
        )
        if len(encode(letter)) > self.limit:
            head = raw[:HEAD_BYTES]
            head_encoding: Literal["utf-8", "base64"]
            if encoding == "utf-8":  # cut on a character boundary
                head_value, kinds = self.scrub.text_and_kinds(head.decode("utf-8", "ignore"))
                head_encoding = encoding
            else:
                head_value, head_encoding = DeadLetter.text_of(head)
            letter = letter.model_copy(
                update={"value": head_value, "value_encoding": head_encoding, "truncated": True, "redacted": kinds}
            )
        return letter

    async def dead_letter(
        self, message: Any, pipeline: str | None, step: str, error: BaseException | str, attempts: int, request_id: str | None
    ) -> None:
        """Send a dead letter and wait until the broker acknowledged it, retrying with backoff until it does."""
        letter = self.letter(message, pipeline, step, error, attempts, request_id)
        value = encode(letter)
        delay = 0.5
        while True:
            try:
                await self.send_and_wait(DLQ, letter.request_id, value)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the broker refused or is away: try again, never drop it
                log.warning("dead letter from %s[%s]@%s not accepted (%s); retrying in %.1fs",
                            letter.topic, letter.partition, letter.offset, type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(RETRY_MAX_S, delay * 2)
        self.metrics.dlq.labels(pipeline or "-", step, letter.error_class).inc()

    async def span(self, trace: StepTrace) -> asyncio.Future[Any]:
        if trace.error:
            trace.error = self.scrub.text(trace.error)
        return await self.send(TRACES, trace.trace_id, orjson.dumps(trace.to_dict()))
