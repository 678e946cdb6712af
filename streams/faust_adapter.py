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

from streams.acks import DeliveryTracker, Jump, OrderedAcks
from streams.dispatch import KeyedDispatcher

__all__ = [
    "FaustProducer",
    "assigned",
    "committed_offset",
    "install_commit_guards",
    "delete_local",
    "input_partitions",
    "lag",
    "put",
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

    install_commit_guards()

    async def agent(stream: Any) -> None:
        acking = stream.noack()
        dispatcher = KeyedDispatcher(limit)
        acks: OrderedAcks[Any] = OrderedAcks()
        tracker = DeliveryTracker()
        generation = None
        try:
            async for event in acking.events():
                message = event.message
                if getattr(app, "consumer_generation_id", None) != generation:
                    generation = getattr(app, "consumer_generation_id", None)
                    tracker.reset()  # a rebalance: every partition restarts from its committed offset
                jump = tracker.delivered(message.tp, message.offset, committed_offset(app, message.tp))
                if jump is not None and await _on_jump(app, name, jump):
                    tracker.sought(message.tp, jump.start)
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


async def _on_jump(app: Any, name: str, jump: Jump) -> bool:
    """A hole in a partition's delivered offsets: seek back to it once (True); a confirmed hole is a real gap."""
    consumer = _consumer(app)
    if consumer is None:
        return False
    tp = jump.partition
    if jump.again:
        log.info("%s: offsets %d-%d of %s are a gap in the log; committing over them", name, jump.start, jump.end, tp)
        consumer._gap[tp].addi(jump.start, jump.end + 1)  # counted as acked by the guarded _new_offset
        return False
    if rebalancing(app) or tp not in assigned(app):
        return False  # the rebalance ends with a seek to the committed offset anyway
    log.warning("%s: offsets %d-%d of %s were fetched but never delivered; seeking back to %d",
                name, jump.start, jump.end, tp, jump.start)
    await consumer.seek(tp, jump.start)
    return True


def committed_offset(app: Any, tp: Any) -> int | None:
    """The offset the app's group has committed for ``tp``, as its consumer knows it (None if none yet)."""
    consumer = _consumer(app)
    if consumer is None:
        return None
    value = consumer._committed_offset.get(tp)
    return int(value) if value is not None else None


_ORIGINAL: dict[str, Any] = {}


class _NeverHides(dict):  # type: ignore[type-arg]
    """Faust's read offsets, except that its fetch loop (``mapping[tp]``) sees none: it drops no record.

    ``get``/``items`` (lag, seeks) see the real values.
    """

    def __getitem__(self, key: Any) -> Any:
        return None


def install_commit_guards() -> None:
    """Make faust-streaming 0.15.3 commit only offsets below which everything was acked.

    Two changes to its ``Consumer``, measured by a kill campaign (requests lost below the committed
    offset, never processed):

    - ``_new_offset`` committed the first run of acked offsets even when it did not start at the
      committed offset (committed 100, acked 101..103 → 104; the off-by-one ``min - committed > 1``).
      Now a run must start exactly at the committed offset.
    - ``_add_gap`` marked every offset the fetcher skipped as done, so offsets dropped while a
      partition was paused were committed over. Now gaps are recorded only when the agent has seen
      the same hole twice (``DeliveryTracker``): a real gap in the log.
    - Its fetch loop drops a record whose offset is below the last one it handed over
      (``_read_offset``). After a rebalance's seek to the committed offset, records still buffered
      from before the seek arrive first and move that mark forward, so the re-fetched records
      behind them were dropped: a hole that no later seek could fill. Now nothing is dropped;
      a duplicate delivery is skipped by the ``request-state`` table.
    """
    if _ORIGINAL:
        return
    from faust.transport import consumer as fc

    cls = fc.Consumer
    _ORIGINAL["_add_gap"] = cls._add_gap
    _ORIGINAL["_new_offset"] = cls._new_offset

    def _get(self: Any) -> Any:
        return self.__dict__["_conveyor_read_offset"]

    def _set(self: Any, value: Any) -> None:
        self.__dict__["_conveyor_read_offset"] = _NeverHides(value)

    cls._read_offset = property(_get, _set)  # type: ignore[assignment]

    async def _add_gap(self: Any, tp: Any, offset_from: int, offset_to: int) -> None:
        return None  # holes are handled by the agent: seek back, or a confirmed gap via the original

    def _new_offset(self: Any, tp: Any) -> int | None:
        acked = self._acked[tp]
        if not acked:
            return None
        gap_for_tp = self._gap[tp]
        if gap_for_tp:  # confirmed gaps (see _on_jump) count as acked, as in faust
            max_offset = max(acked)
            candidates = sorted(gap_for_tp.overlap(0, max_offset + 1), key=lambda x: x.begin)
            if candidates:
                filler = [o for entry in candidates for o in range(entry.begin, entry.end)]
                acked.extend(o for o in filler if o not in self._acked_index[tp])
                gap_for_tp.chop(0, max(filler[-1], max_offset) + 1)
        acked.sort()
        committed = self._committed_offset[tp]
        if committed is not None and acked[0] > committed:
            return None  # the next offset to commit is not acked yet: wait for it
        batch = next(fc.consecutive_numbers(acked))
        acked[: len(batch)] = []
        self._acked_index[tp].difference_update(batch)
        return int(batch[-1]) + 1

    cls._add_gap = _add_gap  # type: ignore[method-assign]
    cls._new_offset = _new_offset  # type: ignore[method-assign]


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


def put(table: Any, partition: int, key: Any, value: Any) -> Any:
    """Set ``key`` in the table and send its changelog record to ``partition``; returns the record's delivery."""
    table.data[key] = value
    return table.send_changelog(partition, key, value)


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
