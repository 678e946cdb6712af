"""The person's side of approvals: what waits (``conveyor approvals``) and answering it (``conveyor approve``).

Read from the topics, so it needs only the broker: a request waits when it is on
``conveyor.approval-requests``, no decision for it is on ``conveyor.approvals`` and it has not expired.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import orjson
from pydantic import ValidationError

from streams.approvals import ApprovalRequest, DecisionIn
from streams.client import Client
from streams.errors import ConveyorError
from streams.topics import APPROVAL_REQUESTS, APPROVALS

__all__ = ["ApprovalNotWaitingError", "Waiting", "decide", "waiting_approvals"]


class ApprovalNotWaitingError(ConveyorError):
    """No approval waits for that request (never asked, already decided or expired): the message says which."""


@dataclass
class Waiting:
    request: ApprovalRequest
    decided: dict[str, object] | None = None  # the decision already sent, if any

    @property
    def expired(self) -> bool:
        return self.request.expires_at <= time.time()

    @property
    def open(self) -> bool:
        return self.decided is None and not self.expired


async def waiting_approvals(client: Client) -> list[Waiting]:
    """Every approval asked so far, oldest first, with the decision sent for it (if any).

    A decision that names its approval (``parked_key``, as ``conveyor approve`` sends) answers that one; one
    without answers the oldest unanswered approval of its id (and tenant), as the router matches it.
    """
    asked: dict[str, Waiting] = {}
    for _, value in await client.read_to_end(APPROVAL_REQUESTS):
        try:
            request = ApprovalRequest.model_validate_json(value)
        except ValidationError:
            continue
        asked.setdefault(request.parked_key or f"{request.tenant}/{request.id}", Waiting(request))
    ordered = sorted(asked.values(), key=lambda w: w.request.requested_at)
    for _, value in await client.read_to_end(APPROVALS):
        try:
            decision = DecisionIn.model_validate_json(value)
        except ValidationError:
            continue  # the router dead-letters it; it decided nothing
        for item in ordered:
            r = item.request
            if (r.id == decision.id and (decision.tenant is None or decision.tenant == r.tenant)
                    and (decision.parked_key is None or decision.parked_key == r.parked_key) and item.decided is None):
                item.decided = orjson.loads(value)
                break
    return ordered


async def decide(client: Client, request_id: str, approve: bool, comment: str, by: str,
                 tenant: str | None = None) -> ApprovalRequest:
    """Send a decision for the approval that waits for ``request_id``; raise if none waits."""
    asked = [w for w in await waiting_approvals(client) if w.request.id == request_id
             and (tenant is None or w.request.tenant == tenant)]
    if not asked:
        raise ApprovalNotWaitingError(
            f"no approval was asked for request {request_id!r}{f' of tenant {tenant!r}' if tenant else ''}; "
            "`conveyor approvals` lists those that wait"
        )
    open_ = [w for w in asked if w.open]
    if not open_:
        last = asked[-1]
        if last.decided is not None:
            raise ApprovalNotWaitingError(
                f"request {request_id!r} was already decided: {last.decided.get('decision')} by {last.decided.get('by')}"
            )
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(last.request.expires_at))
        raise ApprovalNotWaitingError(f"the approval for request {request_id!r} expired at {when}; it went on as expired")
    if len(open_) > 1:
        tenants = ", ".join(sorted(w.request.tenant for w in open_))
        raise ApprovalNotWaitingError(f"requests of several tenants wait under id {request_id!r} ({tenants}): add --tenant")
    target = open_[0].request
    body = DecisionIn(id=request_id, decision="approve" if approve else "reject", comment=comment, by=by,
                      tenant=target.tenant, parked_key=target.parked_key or None)
    await client.send(APPROVALS, orjson.dumps(body.model_dump()), key=request_id.encode())
    return target
