"""What the kill campaign reads back, and how it judges it: results per request id, where each id
sits on the pipeline's input topics, the spans steps emitted, and the groups' committed offsets.

Judging (see :func:`tally`):

- **answered**: a published id with at least one result on ``conveyor.results``;
- **lost**: a published id with no result at all;
- **conflicting**: an id whose results do not all carry the same *outcome*. At-least-once delivery
  may legitimately answer a request twice after a crash (a step re-runs what it had not committed),
  and the copies then differ in ``latency_ms``, ``trace_id`` (ingress mints a new trace for a
  re-delivered request), ``usage`` and the order of ``route``. What a replay must never change is
  the decision: ``status``, ``answer``, ``intent``, the safety verdict and the set of steps in
  ``route``. Two results that differ there are two different answers to one request;
- **duplicates**: extra results of ids that are not conflicting (same outcome, sent again);
- **wrong**: where the right answer is known (the ``echo`` pipeline answers with the text it was
  given), an id with a result that is not ``ok`` with that answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from bench.chaos_kafka import GroupOffsets, Record, TopicTail
from streams.topics import REQUESTS, RESULTS, TRACES, step_topic

__all__ = ["Diagnosis", "Input", "PipelineView", "Tally", "diagnose", "diagnose_all", "outcome", "pipeline_inputs",
           "processed_upto", "tally"]

Position = tuple[str, int, int]  # topic, partition, offset


@dataclass(frozen=True)
class Input:
    """A component that consumes one input topic under its own consumer group."""

    component: str
    group: str
    topic: str


def pipeline_inputs(spec: Any) -> list[Input]:
    """Ingress, then the graph's nodes in declaration order, each with its group and input topic."""
    return [Input("ingress", "conveyor-ingress", REQUESTS),
            *(Input(n.name, f"conveyor-{spec.name}-{n.name}", step_topic(spec.name, n.name)) for n in spec.nodes)]


def _request_id(topic: str, value: bytes) -> str | None:
    try:
        body = orjson.loads(value)
        return str(body["id"] if topic == REQUESTS else body["request"]["id"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None


class PipelineView:
    """Reads the pipeline's topics from the beginning with one librdkafka consumer, incrementally."""

    def __init__(self, bootstrap: str, inputs: list[Input]) -> None:
        self.inputs = inputs
        self.tail = TopicTail(bootstrap, [i.topic for i in inputs] + [RESULTS, TRACES])
        self.groups = GroupOffsets(bootstrap, [i.group for i in inputs])
        self.results: dict[str, list[dict[str, Any]]] = {}
        self.seen: dict[str, list[Position]] = {}
        self.spans: set[tuple[str, str]] = set()  # (request id, step)

    def refresh(self) -> int:
        """Read what is new on every topic; returns how many records that was."""
        records = self.tail.read()
        for record in records:
            self._take(record)
        return len(records)

    def _take(self, r: Record) -> None:
        if r.topic == RESULTS:
            result = orjson.loads(r.value)
            self.results.setdefault(str(result["id"]), []).append(result)
        elif r.topic == TRACES:
            span = orjson.loads(r.value)
            self.spans.add((str(span["request_id"]), str(span["step"])))
        elif (rid := _request_id(r.topic, r.value)) is not None:
            self.seen.setdefault(rid, []).append((r.topic, r.partition, r.offset))

    def ends(self) -> dict[tuple[str, int], int]:
        return dict(self.tail.ends)

    def committed(self) -> dict[str, dict[int, int]]:
        """Input topic -> partition -> its group's committed offset."""
        out = {}
        for i in self.inputs:
            partitions = [p for t, p in self.tail.partitions if t == i.topic]
            out[i.topic] = self.groups.committed(i.group, i.topic, partitions)
        return out

    def unsettled(self, committed: Mapping[str, Mapping[int, int]]) -> list[str]:
        """Input partitions whose group's committed offset is not the end read here: ``topic[p] committed/end``.

        Below: not everything is processed yet. Above: records arrived since this view read the topic.
        """
        inputs = {i.topic for i in self.inputs}
        return [f"{t}[{p}] {committed[t].get(p, 0)}/{end}" for (t, p), end in sorted(self.tail.ends.items())
                if t in inputs and committed[t].get(p, 0) != end]

    def close(self) -> None:
        self.tail.close()
        self.groups.close()


def outcome(result: Mapping[str, Any]) -> tuple[Any, ...]:
    """What a replay must not change (module docstring): status, answer, intent, verdict, steps run."""
    safety = result.get("safety") or {}
    return (result.get("status"), result.get("answer"), result.get("intent"), safety.get("verdict"),
            tuple(sorted(result.get("route") or [])))


@dataclass(frozen=True)
class Tally:
    answered: list[str]
    lost: list[str]
    conflicting: list[str]
    duplicates: int
    wrong: list[str]
    unexpected: int  # results whose id was never published (acknowledged) by the campaign


def tally(published: Mapping[str, Mapping[str, Any]], results: Mapping[str, list[dict[str, Any]]],
          expected: Callable[[Mapping[str, Any]], tuple[Any, ...] | None]) -> Tally:
    """Judge the results of ``published`` (id -> request); ``expected(request)`` is the right outcome, or None."""
    answered = [i for i in published if results.get(i)]
    conflicting = [i for i in answered if len({outcome(r) for r in results[i]}) > 1]
    clashing = set(conflicting)
    duplicates = sum(len(results[i]) - 1 for i in answered if i not in clashing)
    wrong = [i for i in answered if (want := expected(published[i])) is not None
             and any(outcome(r)[:2] != want for r in results[i])]
    return Tally(answered=answered, lost=[i for i in published if not results.get(i)], conflicting=conflicting,
                 duplicates=duplicates, wrong=wrong, unexpected=sum(1 for i in results if i not in published))


@dataclass(frozen=True)
class Diagnosis:
    """Where a lost request stopped: the last input topic it reached, and what that step's group did."""

    request_id: str
    component: str | None
    topic: str | None
    partition: int | None
    offset: int | None
    committed: int | None
    span: bool | None  # the component emitted a span for this id (None: ingress emits none)
    verdict: str
    holders: tuple[str, ...] = ()  # the workers holding that partition when the campaign ended


def processed_upto(view: PipelineView) -> dict[tuple[str, int], int]:
    """(input topic, partition) -> the highest offset its step got through: a span, or for ingress
    (which emits none) the request on the entry step's topic."""
    component = {i.topic: i.component for i in view.inputs}
    entry = view.inputs[1].topic
    out: dict[tuple[str, int], int] = {}
    for rid, positions in view.seen.items():
        forwarded = any(t == entry for t, _, _ in positions)
        for topic, partition, offset in positions:
            done = forwarded if topic == REQUESTS else (rid, component.get(topic)) in view.spans
            if done and offset > out.get((topic, partition), -1):
                out[(topic, partition)] = offset
    return out


def _verdict(span: bool | None, offset: int, committed: int, processed_upto: int) -> str:
    if span:
        return "processed (span emitted) but nothing downstream"
    if offset < committed:
        return ("below the committed offset, nothing downstream" if span is None
                else "skipped: below the committed offset, never processed")
    if processed_upto > offset:
        return "passed over: later offsets processed, never this one; the commit stops here"
    return "not consumed: at or above the committed offset, nothing after it processed"


def diagnose(request_id: str, view: PipelineView, committed: Mapping[str, Mapping[int, int]],
             holders: Mapping[tuple[str, int], list[str]], processed: Mapping[tuple[str, int], int]) -> Diagnosis:
    """Where ``request_id`` stopped (the furthest input topic it reached) and why it went no further."""
    order = {i.topic: n for n, i in enumerate(view.inputs)}
    positions = [p for p in view.seen.get(request_id, []) if p[0] in order]
    if not positions:
        return Diagnosis(request_id, None, None, None, None, None, None, f"not found on {REQUESTS}")
    topic, partition, offset = max(positions, key=lambda p: (order[p[0]], p[2]))
    where = view.inputs[order[topic]]
    mark = committed[topic].get(partition, 0)
    span = None if where.component == "ingress" else (request_id, where.component) in view.spans
    verdict = _verdict(span, offset, mark, processed.get((topic, partition), -1))
    return Diagnosis(request_id, where.component, topic, partition, offset, mark, span, verdict,
                     tuple(holders.get((topic, partition), ())))


def diagnose_all(ids: Iterable[str], view: PipelineView, committed: Mapping[str, Mapping[int, int]],
                 holders: Mapping[tuple[str, int], list[str]]) -> list[Diagnosis]:
    processed = processed_upto(view)
    return [diagnose(i, view, committed, holders, processed) for i in ids]
