"""Bounded state: changelogged table entries that remember their partition and expire.

Measured before this existed: 10,000 echo requests left 40,000 request-state keys (one per step,
never removed) and +4.8 kB of worker RSS per request; at 100 req/s that is about 38 GB a day.
Every entry is now ``{"at": written, "p": partition, "value": ...}``. A sweep (a Faust timer)
deletes entries older than their TTL with a tombstone on the changelog partition they were
written to, and forgets local copies of partitions this worker no longer owns (Faust's memory
store keeps live-written keys of revoked partitions otherwise).

The TTL is a de-duplication window: a request-state entry must outlive any re-delivery of its
message (offsets are committed within seconds, so minutes are plenty).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol

from streams import faust_adapter

__all__ = ["ExpiringTable", "MemoryTable", "StateTable", "SweepReport"]


class StateTable(Protocol):
    """What processors need of a state table (a Faust table in a worker, a dict in ``streams.testing``)."""

    def get(self, key: str) -> Any | None: ...

    def set(self, key: str, value: Any, partition: int) -> Any:
        """Write; returns the changelog record's delivery (await it before acking the input), or None."""
        ...

    def values(self) -> Iterator[tuple[str, Any, int]]: ...


class MemoryTable:
    """A state table in a dict, with the same record format (for ``streams.testing``)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.data: dict[str, dict[str, Any]] = {}

    def get(self, key: str) -> Any | None:
        record = self.data.get(key)
        return record["value"] if record is not None else None

    def set(self, key: str, value: Any, partition: int) -> None:
        self.data[key] = {"at": round(self.clock(), 3), "p": partition, "value": value}
        return None

    def values(self) -> Iterator[tuple[str, Any, int]]:
        for key, record in list(self.data.items()):
            yield key, record["value"], record["p"]

    def __len__(self) -> int:
        return len(self.data)


@dataclass
class SweepReport:
    expired: int = 0
    forgotten: int = 0
    kept: int = 0


class ExpiringTable:
    """A Faust table of records that expire ``ttl_s`` after they were last written."""

    def __init__(
        self, table: Any, app: Any, ttl_s: float, clock: Callable[[], float] = time.time,
        keep: Callable[[Any, float], bool] | None = None,
    ) -> None:
        self.table = table
        self.app = app
        self.ttl_s = ttl_s
        self.clock = clock
        self.keep = keep  # (value, now) -> True while an entry must not expire (e.g. a join still waiting)

    def get(self, key: str) -> Any | None:
        record = self.table.get(key)
        return record["value"] if isinstance(record, dict) and "value" in record else None

    def set(self, key: str, value: Any, partition: int) -> Any:
        """Write locally and to the changelog partition ``partition``; returns the record's delivery.

        The caller awaits it before its input is acked: faust's own flush before a commit may return
        while records are still buffered, and a SIGKILL then would lose the write.
        """
        return faust_adapter.put(self.table, partition, key, {"at": round(self.clock(), 3), "p": partition, "value": value})

    def __len__(self) -> int:
        return len(self.table.data)

    def values(self) -> Iterator[tuple[str, Any, int]]:
        """(key, value, partition) of the local entries of partitions this worker owns now."""
        owned = {tp.partition for tp in faust_adapter.input_partitions(self.app)}
        for key, record in faust_adapter.table_items(self.table):
            if isinstance(record, dict) and record.get("p") in owned:
                yield key, record.get("value"), int(record["p"])

    def sweep(self) -> SweepReport:
        """Expire old entries of owned partitions (tombstones); forget entries of partitions not owned."""
        report = SweepReport()
        if faust_adapter.rebalancing(self.app):
            return report
        owned = {tp.partition for tp in faust_adapter.input_partitions(self.app)}
        if not owned:
            return report  # starting, or between assignments: nothing is known to be foreign
        now = self.clock()
        cutoff = now - self.ttl_s
        for key, record in faust_adapter.table_items(self.table):
            partition = record.get("p") if isinstance(record, dict) else None
            if partition not in owned:
                faust_adapter.delete_local(self.table, key)
                report.forgotten += 1
            elif self.keep is not None and self.keep(record.get("value"), now):
                report.kept += 1
            elif float(record.get("at", 0.0)) < cutoff and isinstance(partition, int):
                faust_adapter.send_tombstone(self.table, partition, key)
                report.expired += 1
            else:
                report.kept += 1
        return report
