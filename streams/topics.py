"""Every Kafka resource Conveyor uses: topic names (DESIGN.md §1) and the Faust tables.

Topics carry raw bytes: Conveyor decodes values itself (``streams.envelope``) so a malformed
message reaches the dead-letter topic instead of being swallowed by Faust's decoder.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "APPROVALS",
    "APPROVAL_DECISIONS",
    "APPROVAL_INDEX",
    "APPROVAL_REQUESTS",
    "COST_LEDGER",
    "PARKED_APPROVALS",
    "DLQ",
    "LEDGER",
    "LEDGER_SEEN",
    "JOIN_BUFFER",
    "REQUESTS",
    "REQUEST_STATE",
    "RESULTS",
    "SESSION_HISTORY",
    "TRACES",
    "raw_topic",
    "raw_topics",
    "step_topic",
    "table",
]

REQUESTS = "conveyor.requests"
RESULTS = "conveyor.results"
DLQ = "conveyor.dlq"
TRACES = "conveyor.traces"
LEDGER = "conveyor.ledger"  # cost entries keyed by tenant, folded into the cost-ledger table
APPROVAL_REQUESTS = "conveyor.approval-requests"  # what waits for a person, keyed by request id
APPROVALS = "conveyor.approvals"  # people's decisions, keyed by request id (any client, any partitioner)
APPROVAL_DECISIONS = "conveyor.approval-decisions"  # the same, validated and re-keyed by Conveyor's producer

REQUEST_STATE = "request-state"  # per step app: tenant/request id -> route, output, attempts (expires)
SESSION_HISTORY = "session-history"  # generation app: tenant/session -> last turns (expires when idle)
COST_LEDGER = "cost-ledger"  # ledger app: tenant -> totals
JOIN_BUFFER = "join-buffer"  # join node app: tenant/request id|fan-out pass -> branches gathered so far
LEDGER_SEEN = "ledger-seen"  # ledger app: tenant/request id already counted (expires)
PARKED_APPROVALS = "parked-approvals"  # approval node app: tenant/request id|node|visit -> the parked request
APPROVAL_INDEX = "approval-index"  # approvals app: request id -> where it is parked, decisions not yet matched


def step_topic(pipeline: str, node: str) -> str:
    """Input topic of a pipeline node: ``conveyor.<pipeline>.<node>``."""
    return f"conveyor.{pipeline}.{node}"


def raw_topic(app: Any, name: str, partitions: int | None = None) -> Any:
    """A Faust topic whose keys and values are bytes, undecoded."""
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw", partitions=partitions)


def raw_topics(app: Any, names: list[str], partitions: int | None = None) -> Any:
    """One Faust topic over several names (one agent reads them together, partition p of each on one worker)."""
    return app.topic(*names, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
                     partitions=partitions)


def table(app: Any, name: str, partitions: int) -> Any:
    """A changelogged table with JSON values, co-partitioned with the app's input topic."""
    return app.Table(name, default=None, partitions=partitions, key_type=str)
