"""Human approval (DESIGN.md §6): the built-in ``approval`` step, which the runtime parks until a person answers.

A node using it::

    - name: review
      step: approval
      config: {timeout_s: 600, summary: "Applicant {name}: risk {risk_score} ({reasons})", default: rejected}
      routes: {approved: welcome, rejected: $reject, expired: $reject}

The runtime (``streams.approvals``) does the parking: it stores the request, publishes
``{id, pipeline, node, summary, expires_at}`` to ``conveyor.approval-requests`` and a
``pending_approval`` status to ``conveyor.results``, and resumes the request when
``{id, decision: approve|reject, comment, by}`` arrives on ``conveyor.approvals`` or
``timeout_s`` passes. This class only says what to ask (:meth:`Approval.ask`) and what a decision
means (:meth:`Approval.decide`); it never sees Kafka. The decision lands in the state as
``approval: {decision, by, comment, decided_at, waited_s}`` (``default`` too, for an expired one).

``summary`` is a ``str.format`` template over the request's state (``{text}``, ``{name}``, …); a
field that is missing is left as ``{name}``, a float is shown with 3 significant digits.
"""

from __future__ import annotations

import string
import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from steps.base import FatalStepError, StepContext, StepModel
from steps.registry import step

__all__ = ["Approval", "ApprovalAsk", "ApprovalDecision", "ApprovalInput", "ApprovalOutput", "Decided", "parse_decision"]

Decided = Literal["approved", "rejected", "expired"]
_DECISIONS: dict[str, Decided] = {
    "approve": "approved", "approved": "approved", "yes": "approved",
    "reject": "rejected", "rejected": "rejected", "no": "rejected",
    "expire": "expired", "expired": "expired",
}


class ApprovalInput(StepModel):
    """The whole state: the summary template may name any field of it."""

    model_config = ConfigDict(extra="allow")
    text: str = ""


class ApprovalDecision(StepModel):
    decision: Decided
    by: str
    comment: str = ""
    decided_at: float
    waited_s: float = 0.0
    default: str | None = None  # for an expired request: what the pipeline declared it is treated as


class ApprovalOutput(StepModel):
    route: Decided
    approval: ApprovalDecision


class ApprovalAsk(BaseModel):
    """What the runtime publishes on ``conveyor.approval-requests`` (plus id, pipeline, node, expires_at)."""

    summary: str
    timeout_s: float


class BadDecisionError(ValueError):
    """A decision message that says neither approve nor reject: send ``"decision": "approve"`` or ``"reject"``."""


def parse_decision(value: Any) -> Decided:
    """``approve``/``reject`` (and ``yes``/``no``, ``approved``/``rejected``) as the decision they mean."""
    if isinstance(value, bool):
        return "approved" if value else "rejected"
    found = _DECISIONS.get(str(value).strip().lower()) if value is not None else None
    if found is None:
        raise BadDecisionError(f"decision {value!r} is neither 'approve' nor 'reject'")
    return found


class _Lenient(string.Formatter):
    def get_value(self, key: Any, args: Any, kwargs: Any) -> Any:
        if isinstance(key, str) and key not in kwargs:
            return _Missing(key)
        return super().get_value(key, args, kwargs)

    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, _Missing):
            return "{" + value.key + "}"
        if isinstance(value, float) and not format_spec:
            return f"{value:.3g}"
        if isinstance(value, (list, tuple)) and not format_spec:
            return ", ".join(str(v) for v in value)
        try:
            return super().format_field(value, format_spec)
        except (ValueError, TypeError):
            return str(value)


class _Missing:
    def __init__(self, key: str) -> None:
        self.key = key


@step("approval")
class Approval:
    """Parks the request until a person approves or rejects it, or ``timeout_s`` passes (route ``expired``)."""

    parks = True  # the runtime parks this step's requests instead of calling run()

    def __init__(self, timeout_s: Annotated[float, Field(gt=0)] = 3600.0, summary: str = "{text}",
                 default: Literal["approved", "rejected"] = "rejected") -> None:
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0 seconds, got {timeout_s}")
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(summary) if f is not None]
        except ValueError as exc:
            raise ValueError(f"summary {summary!r} is not a valid template ({exc}); write e.g. 'Refund {{amount}}'") from None
        for name in fields:
            if not name.isidentifier():
                raise ValueError(f"summary field {{{name}}} must be a plain state field name (no index, attribute or "
                                 "position); e.g. {amount}")
        self.timeout_s = float(timeout_s)
        self.summary = summary
        self.default = default

    def ask(self, input: ApprovalInput, ctx: StepContext) -> ApprovalAsk:
        """What the person is asked: the summary rendered over the state."""
        state = input.model_dump()
        text = _Lenient().format(self.summary, **state)
        return ApprovalAsk(summary=text[:2000], timeout_s=self.timeout_s)

    def decide(self, decision: Any, by: str, comment: str = "", *, parked_at: float, now: float | None = None) -> ApprovalOutput:
        """The step's output for a decision (``approve``/``reject``/``expired``)."""
        decided = parse_decision(decision)
        at = time.time() if now is None else now
        record = ApprovalDecision(decision=decided, by=by or "unknown", comment=comment[:2000], decided_at=at,
                                  waited_s=round(max(0.0, at - parked_at), 3),
                                  default=self.default if decided == "expired" else None)
        return ApprovalOutput(route=decided, approval=record)

    async def run(self, input: ApprovalInput, ctx: StepContext) -> ApprovalOutput:
        raise FatalStepError(
            "the approval step is run by the runtime (it parks the request until a decision); "
            "use it as a pipeline node, not by calling run()"
        )
