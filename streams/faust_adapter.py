"""The Faust boundary: every call into faust-streaming that is not plain app/topic/table construction.

Agents (one per component) take events in delivery order, run them through a
:class:`~streams.dispatch.KeyedDispatcher` (many sessions at once, one session in order) and ack
them through :class:`~streams.acks.OrderedAcks`, so a commit never passes a message still being
handled. Private Faust attributes (the consumer before start, read offsets, the table's store) are
read only here.
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable, Iterator

from streams.acks import OrderedAcks
from streams.dispatch import KeyedDispatcher

__all__ = [
    "FaustProducer",
    "assigned",
    "delete_local",
    "input_partitions",
    "lag",
    "rebalancing",
    "register_agent",
    "send_tombstone",
    "table_items",
]

log = logging.getLogger(__name__)

Handler = Callable[[Any], Awaitable[None]]
Unhandled = Callable[[Any, BaseException], Awaitable[None]]


def register_agent(app: Any, topic: Any, name: str, handler: Handler, on_unhandled: Unhandled, limit: int) -> None:
    """An agent on ``topic``: up to ``limit`` events in flight, per-key order, ordered acks.

    ``handler`` processes one message (``event.message``: topic, partition, offset, key, value,
    timestamp) and emits everything it produces before returning.
    ``on_unhandled(message, exc)`` is the last resort for an exception escaping ``handler`` (a bug
    or a broker failure); it must dead-letter the message and return only once that is done, so
    that the event can be acked. The event is acked only after one of the two returned.
    """

    async def agent(stream: Any) -> None:
        acking = stream.noack()
        dispatcher = KeyedDispatcher(limit)
        acks: OrderedAcks[Any] = OrderedAcks()
        try:
            async for event in acking.events():
                message = event.message
                slot = acks.received(message.tp, message.offset, event)

                async def job(event: Any = event, slot: Any = slot) -> None:
                    try:
                        await handler(event.message)
                    except Exception as exc:  # noqa: BLE001 - a bug or broker failure: dead-letter, keep serving
                        m = event.message
                        log.exception("%s: unexpected error at %s[%s]@%s", name, m.topic, m.partition, m.offset)
                        await on_unhandled(m, exc)
                    for ready in acks.done(slot):
                        await acking.ack(ready)

                await dispatcher.submit(event.key, job)
        finally:
            await dispatcher.drain()

    agent.__name__ = agent.__qualname__ = f"conveyor_{name.replace('-', '_')}"
    app.agent(topic, name=f"conveyor.{name}")(agent)


def _consumer(app: Any) -> Any:
    """The app's consumer if it exists yet (``app.consumer`` would create one)."""
    return getattr(app, "_consumer", None)


def assigned(app: Any) -> set[Any]:
    """Topic partitions the app's consumer holds now (empty while starting or rebalancing)."""
    consumer = _consumer(app)
    try:
        return set(consumer.assignment()) if consumer is not None else set()
    except Exception:  # noqa: BLE001 - consumer not started yet
        return set()


def is_input_topic(topic: str) -> bool:
    """False for Faust's own topics (table changelogs, the assignor's leader topic)."""
    return not topic.endswith("-changelog") and "__assignor" not in topic


def input_partitions(app: Any) -> Iterator[Any]:
    """The input (non-changelog) partitions the app holds now."""
    for tp in assigned(app):
        if is_input_topic(tp.topic):
            yield tp


def lag(app: Any, tp: Any) -> int | None:
    """Messages of ``tp`` not yet read: highwater (from Fetch responses, right on Tansu too) minus position."""
    consumer = _consumer(app)
    if consumer is None:
        return None
    try:
        highwater = consumer.highwater(tp)
    except Exception:  # noqa: BLE001 - no fetch response for this partition yet
        return None
    if highwater is None:
        return None
    read = consumer._read_offset.get(tp)
    position = read + 1 if read is not None else (consumer._committed_offset.get(tp) or 0)
    return max(0, int(highwater) - int(position))


def table_items(table: Any) -> list[tuple[Any, Any]]:
    """A snapshot of the table's local entries (every partition this worker holds)."""
    return list(table.data.items())


def delete_local(table: Any, key: Any) -> None:
    """Forget ``key`` in this worker's copy only (no changelog record): for partitions it no longer owns."""
    table.data.pop(key, None)


def send_tombstone(table: Any, partition: int, key: Any) -> None:
    """Delete ``key`` from the table and its changelog (a null record on ``partition``), outside any event."""
    table.data.pop(key, None)
    table.send_changelog(partition, key, None, value_serializer="raw")


def rebalancing(app: Any) -> bool:
    """Whether the app's consumer group is rebalancing now (assignments are about to change)."""
    return bool(getattr(app, "rebalancing", False))


class FaustProducer:
    """Sends through an app's Faust producer to raw-bytes topics (``streams.outputs.Producer``)."""

    def __init__(self, app: Any, partitions: int) -> None:
        self.app = app
        self.partitions = partitions
        self._topics: dict[str, Any] = {}

    def topic(self, name: str) -> Any:
        from streams.topics import raw_topic

        if name not in self._topics:
            self._topics[name] = raw_topic(self.app, name, self.partitions)
        return self._topics[name]

    async def declare(self) -> None:
        for topic in self._topics.values():
            await topic.maybe_declare()

    async def send(self, name: str, key: bytes | None, value: bytes) -> Any:
        # force=True: send now, never attached to the event being processed
        return await self.topic(name).send(key=key, value=value, force=True)
