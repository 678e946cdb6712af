"""Ingress: ``conveyor.requests`` → a validated envelope on the pipeline's entry topic, keyed by session.

A request that cannot go on gets a ``rejected`` result when it has an id (invalid, too large,
or naming a pipeline no running worker serves) and a dead letter with the reason; either way its
input is acked only once what it produced was acknowledged by the broker.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from typing import Any, Protocol

from streams.app import Settings
from streams.envelope import Envelope, Request, Result, decode, encode
from streams.errors import EnvelopeDecodeError
from streams.outputs import Outputs
from streams.topics import step_topic

__all__ = ["IngressProcessor"]


class Directory(Protocol):
    def entry_for(self, pipeline: str) -> str | None: ...

    def served(self) -> list[str]: ...

    def deadline_for(self, pipeline: str) -> int | None: ...


class IngressProcessor:
    """Validates, assigns ids and deadlines, and forwards to ``conveyor.<pipeline>.<entry>``."""

    def __init__(self, outputs: Outputs, directory: Directory, settings: Settings) -> None:
        self.outputs = outputs
        self.directory = directory
        self.settings = settings

    async def process(self, message: Any) -> None:
        m = self.outputs.metrics
        started = time.time()
        m.queue.labels("-", "ingress").observe(max(0.0, started - message.timestamp))
        request: Request | None = None
        try:
            request = self._validate(message.value, message)
            entry = self.directory.entry_for(request.pipeline)
            if entry is None:
                raise EnvelopeDecodeError(
                    f"no running worker serves pipeline {request.pipeline!r} (served: {self.directory.served()}); "
                    f"start one with `conveyor worker --pipeline {request.pipeline}`",
                    request.id,
                )
            envelope = self._envelope(request, message)
            value = encode(envelope)
            self.outputs.check_size("the request's envelope", value)
        except (EnvelopeDecodeError, ValueError) as exc:
            reason = exc.reason if isinstance(exc, EnvelopeDecodeError) else str(exc)
            rid = request.id if request is not None else getattr(exc, "request_id", None)
            tenant = request.tenant if request is not None else None
            m.messages.labels("-", "ingress", "invalid").inc()
            await self._refuse(message, exc, rid, tenant, reason)
            return
        await self.outputs.send_and_wait(step_topic(request.pipeline, entry), request.session_key(), value)
        m.messages.labels(request.pipeline, "ingress", "ok").inc()
        m.processing.labels(request.pipeline, "ingress").observe(time.time() - started)

    async def _refuse(self, message: Any, exc: Exception, rid: str | None, tenant: str | None, reason: str) -> None:
        pending = []
        if rid and len(rid) <= 200:  # an id that long was refused by validation: no result can carry it
            latency = (time.time() - message.timestamp) * 1000
            rejected = Result(id=rid, tenant=tenant, status="rejected", error=reason, latency_ms=round(latency, 2))
            pending.append(await self.outputs.result("-", rejected))
        await self.outputs.dead_letter(message, None, "ingress", exc, 0, rid)
        await asyncio.gather(*pending)

    def _envelope(self, request: Request, message: Any) -> Envelope:
        deadline_ms = (request.deadline_ms or self.directory.deadline_for(request.pipeline)
                       or self.settings.default_deadline_ms)
        return Envelope(
            request=request,
            trace_id=uuid.uuid4().hex,
            published_at=message.timestamp,
            request_offset=message.offset,
            deadline=message.timestamp + deadline_ms / 1000 if deadline_ms else None,
        )

    def _validate(self, raw: bytes | None, message: Any) -> Request:
        request = decode(raw, Request)
        if len(request.text) > self.settings.max_text_chars:
            raise EnvelopeDecodeError(
                f"text is {len(request.text)} characters, over the limit of {self.settings.max_text_chars} "
                "(CONVEYOR_MAX_TEXT_CHARS)",
                request.id,
            )
        if request.id is None:  # derived from where it was published: a re-delivery gets the same id
            digest = hashlib.sha256(f"{message.topic}/{message.partition}/{message.offset}".encode()).hexdigest()
            request = request.model_copy(update={"id": f"r-{digest[:16]}"})
        return request
