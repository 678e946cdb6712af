"""Execution traces: one span per step execution, sent to ``conveyor.traces`` keyed by trace id.

Attribute names follow the OpenTelemetry GenAI conventions where one exists
(``gen_ai.request.model``, ``gen_ai.usage.input_tokens``, ``gen_ai.usage.output_tokens``).
Conveyor's own: ``conveyor.tier`` (the model tier a gated node ran on, also on its model calls'
spans) and ``conveyor.budget`` (what the tenant's budget did: the tier it forced, or ``rejected``),
with ``conveyor.budget.spent_usd``/``conveyor.budget.limit_usd`` when the tenant has a budget.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Any

from steps.base import SubSpan, UsageRecord

__all__ = ["BUDGET", "BUDGET_LIMIT", "BUDGET_SPENT", "TIER", "StepTrace", "worker_name"]

TIER = "conveyor.tier"
BUDGET = "conveyor.budget"
BUDGET_SPENT = "conveyor.budget.spent_usd"
BUDGET_LIMIT = "conveyor.budget.limit_usd"


def worker_name(configured: str = "") -> str:
    return configured or f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class StepTrace:
    """The span of one step execution; ``to_dict`` is what goes on the wire."""

    trace_id: str
    request_id: str
    pipeline: str
    step: str
    worker: str
    started_at: float
    queue_s: float
    attempt: int = 0
    ended_at: float = 0.0
    status: str = "ok"
    error: str | None = None
    route: str | None = None
    branch: str | None = None  # the open fan-outs this execution ran in (pass/branch, innermost last)
    usage: list[UsageRecord] = field(default_factory=list)
    kind: str = "step"  # "step", or for a call made inside one: "tool" / "llm"
    parent: str | None = None  # the node whose execution made this call
    attributes: dict[str, Any] = field(default_factory=dict)
    children: list[StepTrace] = field(default_factory=list)  # sent after this span, not part of it

    def child(self, span: SubSpan) -> StepTrace:
        """The span of one call (a tool, a model) the step made, recorded with ``ctx.record_span``."""
        return StepTrace(
            self.trace_id, self.request_id, self.pipeline, f"{self.step}/{span.name}", self.worker, span.started_at,
            0.0, attempt=self.attempt, ended_at=span.ended_at, status=span.status, error=span.error,
            branch=self.branch, kind=span.kind, parent=self.step,
            attributes={**({TIER: self.attributes[TIER]} if TIER in self.attributes else {}), **span.attributes},
        )

    def to_dict(self) -> dict[str, Any]:
        model = self.usage[-1].model if self.usage else None
        return {
            "trace_id": self.trace_id,
            "request_id": self.request_id,
            "pipeline": self.pipeline,
            "step": self.step,
            "attempt": self.attempt,
            "worker": self.worker,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "queue_s": round(self.queue_s, 6),
            "processing_s": round(max(0.0, self.ended_at - self.started_at), 6),
            "status": self.status,
            "error": self.error,
            "route": self.route,
            "branch": self.branch,
            "gen_ai.request.model": model,
            "gen_ai.usage.input_tokens": sum(u.input_tokens for u in self.usage),
            "gen_ai.usage.output_tokens": sum(u.output_tokens for u in self.usage),
            "cost_usd": round(sum(u.cost_usd for u in self.usage), 10),
            "kind": self.kind,
            "parent": self.parent,
            **{k: v for k, v in self.attributes.items() if k not in _RESERVED},
        }


_RESERVED = frozenset({"trace_id", "request_id", "pipeline", "step", "attempt", "worker", "started_at", "ended_at",
                       "queue_s", "processing_s", "status", "error", "route", "branch", "kind", "parent"})
