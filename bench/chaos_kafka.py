"""The kill campaign's view from outside: a librdkafka (confluent-kafka) client, not Conveyor's own.

Publishing paced requests, reading whole topics, and the committed offsets of a consumer group.
Two faults of the embedded broker shape this module (../shared/research/broker.md):

- ``ListOffsets(latest)`` is wrong after multi-record batches, so the end of a partition is taken
  from what was read (last offset + 1 after librdkafka reports end of partition from a Fetch), never
  from ``query_watermark_offsets``;
- aiokafka's ``list_consumer_group_offsets`` cannot decode Tansu's answer; librdkafka's
  ``Consumer.committed`` (OffsetFetch) works.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = ["GroupOffsets", "PublishReport", "Record", "TopicTail", "partitions_of", "publish_paced"]

SESSION_TIMEOUT_MS = 6000  # the embedded broker holds every join for session_timeout/2


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


@dataclass
class PublishReport:
    """What the broker acknowledged (``acked``: ids in order of acknowledgement) and refused (id -> error)."""

    acked: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    elapsed_s: float = 0.0


def _consumer(bootstrap: str, group: str, **extra: Any) -> Any:
    from confluent_kafka import Consumer

    return Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": SESSION_TIMEOUT_MS,
        "log.connection.close": False,
        **extra,
    })


def partitions_of(client: Any, topic: str, timeout_s: float = 30.0) -> list[int]:
    """The topic's partitions; asking for it by name creates it (4 partitions) if it does not exist yet."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = client.list_topics(topic=topic, timeout=timeout_s).topics.get(topic)
        if found is not None and found.error is None and found.partitions:
            return sorted(found.partitions)
        if time.monotonic() > deadline:
            raise RuntimeError(f"topic {topic!r} has no partitions after {timeout_s:.0f} s ({found and found.error})")
        time.sleep(0.2)


def publish_paced(bootstrap: str, topic: str, requests: Sequence[Mapping[str, Any]], rate: float,
                  key_of: Callable[[Mapping[str, Any]], str] = lambda r: str(r["session"])) -> PublishReport:
    """Produce each request as JSON at ``rate`` per second (keyed by ``key_of``), then wait for every ack."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    report = PublishReport()

    def delivered(err: Any, msg: Any) -> None:
        rid = orjson.loads(msg.value())["id"]
        if err is None:
            report.acked.append(rid)
        else:
            report.failed[rid] = str(err)

    started = time.monotonic()
    for i, request in enumerate(requests):
        due = started + i / rate
        while (left := due - time.monotonic()) > 0:
            producer.poll(min(left, 0.05))
        producer.produce(topic, orjson.dumps(request), key=key_of(request).encode(), on_delivery=delivered)
        producer.poll(0)
    remaining = producer.flush(120)
    if remaining:
        raise RuntimeError(f"{remaining} requests still unacknowledged 120 s after the last one was produced")
    report.elapsed_s = time.monotonic() - started
    return report


class TopicTail:
    """Reads topics from the beginning, without a group, and keeps the position of each partition.

    :meth:`read` returns what is new since the last call, up to the end of every partition.
    """

    def __init__(self, bootstrap: str, topics: Iterable[str], timeout_s: float = 30.0) -> None:
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        self.consumer = _consumer(bootstrap, f"chaos-reader-{uuid.uuid4().hex[:8]}",
                                  **{"enable.partition.eof": True, "fetch.wait.max.ms": 100,
                                     "allow.auto.create.topics": True})
        self.partitions = [(t, p) for t in topics for p in partitions_of(self.consumer, t, timeout_s)]
        self.consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in self.partitions])
        self.ends: dict[tuple[str, int], int] = {tp: 0 for tp in self.partitions}

    def read(self, timeout_s: float = 60.0) -> list[Record]:
        """New records up to the end of every partition as fetched after this call began.

        Every partition is first re-positioned where reading stopped: librdkafka reports the end of a
        partition once per position, and the fresh fetch makes the ends here no older than the call.
        Raises RuntimeError if some partition reports no end within ``timeout_s``.
        """
        from confluent_kafka import KafkaError, TopicPartition

        for topic, partition in self.partitions:
            self.consumer.seek(TopicPartition(topic, partition, self.ends[(topic, partition)]))
        records: list[Record] = []
        at_end: set[tuple[str, int]] = set()
        deadline = time.monotonic() + timeout_s
        while len(at_end) < len(self.partitions):
            if time.monotonic() > deadline:
                behind = sorted(set(self.partitions) - at_end)
                raise RuntimeError(f"reading {behind[:4]}: no end of partition within {timeout_s:.0f} s")
            for msg in self.consumer.consume(num_messages=5000, timeout=0.5):
                tp = (msg.topic(), msg.partition())
                error = msg.error()
                if error is not None and error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(tp)
                elif error is not None:
                    raise RuntimeError(f"reading {tp}: {error}")
                else:
                    at_end.discard(tp)
                    self.ends[tp] = msg.offset() + 1
                    records.append(Record(tp[0], tp[1], msg.offset(), msg.key(), msg.value()))
        return records

    def close(self) -> None:
        self.consumer.close()


class GroupOffsets:
    """Committed offsets of consumer groups, read with OffsetFetch, without joining the groups."""

    def __init__(self, bootstrap: str, groups: Iterable[str]) -> None:
        self.clients = {group: _consumer(bootstrap, group) for group in groups}

    def committed(self, group: str, topic: str, partitions: Iterable[int], timeout_s: float = 10.0) -> dict[int, int]:
        """Per partition, the next offset the group will read (0 where it committed none)."""
        from confluent_kafka import TopicPartition

        answer = self.clients[group].committed([TopicPartition(topic, p) for p in partitions], timeout=timeout_s)
        return {tp.partition: max(0, tp.offset) for tp in answer}

    def close(self) -> None:
        for client in self.clients.values():
            client.close()
