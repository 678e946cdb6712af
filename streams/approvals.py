"""Human approval on Kafka (DESIGN.md §6): parked requests, their decisions, and how a decision finds them.

Three topics, all keyed by request id:

- ``conveyor.approval-requests``: what waits, ``{id, pipeline, node, summary, expires_at, ...}``, published
  by the approval node when it parks a request (in its ``parked-approvals`` table, keyed like the request).
- ``conveyor.approvals``: decisions from people, ``{id, decision: approve|reject, comment, by}``
  (``tenant`` too when one id is used by several tenants); any Kafka client may publish them.
- ``conveyor.approval-decisions``: the same decisions, validated and re-keyed by Conveyor's own producer, so
  each lands on the partition number its approval request is on whatever partitioner the person's client used.

The **router** (component ``approvals``) reads ``approval-requests`` and ``approval-decisions`` together
(one agent, so partition *p* of both is on one worker) and keeps an index ``id -> where it is parked``; when a
request and its decision have both arrived, in either order, it sends a *resume* message to the approval
node's own topic keyed by the session, where the parked request lives. Expiry is a resume too: the node's
timer sends ``expired`` for what passed ``expires_at``. Everything is changelogged, so a worker killed while a
request waits loses nothing; a decision delivered twice resumes once (the parked entry records it).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from steps.approval import BadDecisionError, parse_decision
from streams.envelope import request_key
from streams.outputs import Outputs
from streams.state import StateTable
from streams.topics import APPROVAL_DECISIONS, APPROVAL_REQUESTS, APPROVALS, step_topic

__all__ = ["ApprovalRequest", "ApprovalRouter", "DecisionIn", "RESUME", "expiry_message", "is_resume", "resume_message", "undecided",
           "waiting"]

log = logging.getLogger(__name__)
RESUME = "conveyor_resume"  # the one key of a resume message on an approval node's topic
MARGIN_S = 3600.0  # an index entry or parked request is kept this long past its expiry (a late decision is logged)


class ApprovalRequest(BaseModel):
    """What ``conveyor.approval-requests`` carries (the first five fields are DESIGN.md's)."""

    id: str
    pipeline: str
    node: str
    summary: str
    expires_at: float
    tenant: str = "default"
    session_key: str = ""
    parked_key: str = ""
    requested_at: float = 0.0


class DecisionIn(BaseModel):
    """A decision on ``conveyor.approvals``."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1)
    decision: str
    comment: str = ""
    by: str = "unknown"
    tenant: str | None = None
    parked_key: str | None = None  # which approval exactly (``conveyor approve`` sends it): one visit of a loop

    @field_validator("decision")
    @classmethod
    def _known(cls, value: str) -> str:
        try:
            parsed = parse_decision(value)
        except BadDecisionError as exc:
            raise ValueError(f"{exc}: send \"decision\": \"approve\" or \"reject\"") from None
        if parsed == "expired":
            raise ValueError("'expired' is decided by the timeout, not sent: send \"approve\" or \"reject\"")
        return "approve" if parsed == "approved" else "reject"


def resume_message(parked_key: str, decision: str, by: str, comment: str = "", at: float | None = None) -> bytes:
    """The message that resumes a parked request at its approval node."""
    body = {"key": parked_key, "decision": decision, "by": by, "comment": comment, "at": at or time.time()}
    return orjson.dumps({RESUME: body})


def expiry_message(parked_key: str, now: float) -> bytes:
    """The resume that expires a parked request nobody decided within its ``timeout_s``."""
    return resume_message(parked_key, "expired", "timeout", "nobody decided in time", now)


def is_resume(value: bytes | None) -> dict[str, Any] | None:
    """The resume body if ``value`` is a resume message, else ``None`` (an envelope, or garbage for the DLQ)."""
    if not value or not value.startswith(b'{"' + RESUME.encode()):
        return None
    try:
        body = orjson.loads(value)[RESUME]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    return body if isinstance(body, dict) and isinstance(body.get("key"), str) else None


def undecided(value: Any, now: float) -> bool:
    """A parked request is kept until it is decided or expired, however long its workers were down."""
    return isinstance(value, dict) and not value.get("done")


def waiting(value: Any, now: float) -> bool:
    """An index entry must not be swept while its request can still be decided (and an hour after)."""
    if not isinstance(value, dict) or value.get("done"):
        return False
    expires = value.get("expires_at")
    return expires is None or now < float(expires) + MARGIN_S


class ApprovalRouter:
    """Matches decisions to parked requests and sends each match to its approval node."""

    def __init__(self, outputs: Outputs, index: StateTable, clock: Callable[[], float] = time.time) -> None:
        self.outputs = outputs
        self.index = index
        self.clock = clock

    async def process(self, message: Any) -> None:
        if message.topic == APPROVALS:
            await self._validate(message)
        elif message.topic == APPROVAL_REQUESTS:
            await self._requested(message)
        elif message.topic == APPROVAL_DECISIONS:
            await self._decided(message)

    async def _validate(self, message: Any) -> None:
        try:
            decision = DecisionIn.model_validate_json(message.value or b"")
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'message'}: {e['msg']}" for e in exc.errors())
            error = ValueError(f"invalid approval decision ({problems}); send "
                               '{"id": "<request id>", "decision": "approve"|"reject", "by": "<who>", "comment": "..."}')
            self.outputs.metrics.messages.labels("-", "approvals", "invalid").inc()
            await self.outputs.dead_letter(message, None, "approvals", error, 0, None)
            return
        body = decision.model_dump()
        body["received_at"] = self.clock()
        await self.outputs.send_and_wait(APPROVAL_DECISIONS, decision.id, orjson.dumps(body))

    async def _requested(self, message: Any) -> None:
        try:
            asked = ApprovalRequest.model_validate_json(message.value or b"")
        except ValidationError as exc:
            await self.outputs.dead_letter(message, None, "approvals", exc, 0, None)
            return
        entry = dict(self.index.get(asked.id) or {"requests": {}, "decisions": []})
        requests = dict(entry.get("requests", {}))
        if asked.tenant in requests and requests[asked.tenant].get("parked_key") == asked.parked_key:
            return  # re-delivery
        requests[asked.tenant] = {**asked.model_dump(), "sent": False}
        entry["requests"] = requests
        entry["expires_at"] = max(float(r["expires_at"]) for r in requests.values())
        await self._match(message, asked.id, entry)

    async def _decided(self, message: Any) -> None:
        try:
            decision = orjson.loads(message.value or b"")
            rid = str(decision["id"])
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            await self.outputs.dead_letter(message, None, "approvals", exc, 0, None)
            return
        entry = dict(self.index.get(rid) or {"requests": {}, "decisions": []})
        decisions = list(entry.get("decisions", []))
        if decision not in decisions:
            decisions.append(decision)
        entry["decisions"] = decisions[-20:]
        entry.setdefault("expires_at", self.clock() + MARGIN_S)  # a decision with no request yet waits a while
        await self._match(message, rid, entry)

    async def _match(self, message: Any, rid: str, entry: dict[str, Any]) -> None:
        """Send every (request, decision) pair that has met; store the rest."""
        pending: list[Any] = []
        requests: dict[str, Any] = dict(entry.get("requests", {}))
        kept: list[dict[str, Any]] = []
        for decision in entry.get("decisions", []):
            tenant, where = decision.get("tenant"), decision.get("parked_key")
            candidates = [r for r in requests.values() if (tenant is None or r["tenant"] == tenant)
                          and (where is None or r["parked_key"] == where)]
            open_ = [r for r in candidates if not r.get("sent")]
            if len(open_) == 1:
                target = open_[0]
            elif len(open_) > 1:
                log.warning("approval decision for %s names no tenant, and %d tenants wait under that id: "
                            "send \"tenant\" with it", rid, len(open_))
                kept.append(decision)
                continue
            elif candidates:  # its approval was answered already: a second answer, or a re-delivery
                log.info("approval decision for %s ignored: %s was already decided", rid,
                         candidates[0]["parked_key"])
                continue
            else:  # the approval request has not arrived yet (another topic): keep it until it does
                kept.append(decision)
                continue
            value = resume_message(target["parked_key"], decision["decision"], decision.get("by") or "unknown",
                                   decision.get("comment") or "", decision.get("received_at"))
            topic = step_topic(target["pipeline"], target["node"])
            self.outputs.topic(topic)
            pending.append(await self.outputs.send(topic, target["session_key"], value))
            requests[target["tenant"]] = {**target, "sent": True}
        entry["requests"] = requests
        entry["decisions"] = kept
        entry["done"] = bool(requests) and all(r.get("sent") for r in requests.values()) and not kept
        for delivery in pending:
            await delivery
        written = self.index.set(rid, entry, message.partition)
        if written is not None:
            await written


def approval_request_message(asked: ApprovalRequest) -> tuple[str, bytes]:
    """(key, value) for ``conveyor.approval-requests``."""
    return asked.id, orjson.dumps(asked.model_dump())


def parked_key(tenant: str, request_id: str, node: str, visit: int) -> str:
    """Where the approval node keeps a parked request (one per visit: an approval inside a loop asks again)."""
    return f"{request_key(tenant, request_id)}|{node}|{visit}"
