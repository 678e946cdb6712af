"""Wire formats (DESIGN.md §2): requests, results, dead letters and the envelope between steps.

All JSON, UTF-8, encoded with orjson and validated with pydantic. :func:`decode` raises
:class:`~streams.errors.EnvelopeDecodeError` with a reason fit for the dead-letter topic.
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from urllib.parse import quote
from typing import Any, Literal, TypeVar

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StrictInt,
    StrictStr,
    ValidationError,
    model_serializer,
    model_validator,
)

from streams.errors import EnvelopeDecodeError

__all__ = [
    "Citation",
    "DeadLetter",
    "Envelope",
    "Request",
    "Result",
    "SafetyReport",
    "Status",
    "Usage",
    "decode",
    "encode",
    "new_request_id",
    "request_key",
    "session_key",
]

Status = Literal["ok", "blocked", "rejected", "failed", "timeout", "pending_approval"]
M = TypeVar("M", bound=BaseModel)


def new_request_id() -> str:
    return f"r-{uuid.uuid4().hex[:16]}"


def _part(value: str) -> str:
    """One key segment, percent-encoded: ``/`` and ``%`` can never be read as a separator."""
    return quote(value, safe="")


def session_key(tenant: str, session: str | None, request_id: str | None) -> str:
    """The partitioning key of every pipeline topic and of the session's tables.

    ``<tenant>/<session>``, each part percent-encoded, so tenant ``acme`` with session ``team/s9``
    (``acme/team%2Fs9``) and tenant ``acme/team`` with session ``s9`` (``acme%2Fteam/s9``) can
    never share a key. Without a session: ``<tenant>/#<id>`` (``#`` never survives encoding, so it
    cannot collide with a session named like the id).
    """
    if session is not None:
        return f"{_part(tenant)}/{_part(session)}"
    return f"{_part(tenant)}/#{_part(request_id or '')}"


def request_key(tenant: str, request_id: str) -> str:
    """Key of per-request state: the same id sent by two tenants is two requests."""
    return f"{_part(tenant)}/{_part(request_id)}"


class Request(BaseModel):
    """A request on ``conveyor.requests``. Only ``text`` is required; unknown fields go to ``metadata``."""

    model_config = ConfigDict(extra="forbid")

    id: StrictStr | None = Field(default=None, min_length=1, max_length=200)
    text: StrictStr = Field(min_length=1)
    tenant: StrictStr = Field(default="default", min_length=1, max_length=200)
    session: StrictStr | None = Field(default=None, min_length=1, max_length=200)
    pipeline: StrictStr = "support"
    metadata: dict[str, Any] = Field(default_factory=dict)
    deadline_ms: StrictInt | None = Field(default=None, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _keep_unknown_fields(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        known = set(cls.model_fields)
        extra = {k: v for k, v in data.items() if k not in known}
        if not extra:
            return data
        metadata = data.get("metadata")
        merged = {**extra, **metadata} if isinstance(metadata, dict) else extra
        return {**{k: v for k, v in data.items() if k in known}, "metadata": merged}

    def session_key(self) -> str:
        """The partitioning key of every pipeline topic (see :func:`session_key`)."""
        return session_key(self.tenant, self.session, self.id)

    def request_key(self) -> str:
        """The key of this request's state: tenant and id together (see :func:`request_key`)."""
        return request_key(self.tenant, str(self.id))


class Usage(BaseModel):
    """Tokens and cost of a request so far; which model tier each gated node used, and what a budget did.

    ``tiers`` maps a node to its tier (streams/budget.py); ``budget`` is None while the tenant is
    within its budget, else the tier the budget forced (e.g. ``"cheap"``) or ``"rejected"``.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    tiers: dict[str, str] = Field(default_factory=dict)
    budget: str | None = None

    @model_serializer(mode="wrap")
    def _additive(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """``tiers`` and ``budget`` appear only when set: results without tiers keep DESIGN.md §2's shape."""
        data: dict[str, Any] = handler(self)
        if not data.get("tiers"):
            data.pop("tiers", None)
        if data.get("budget") is None:
            data.pop("budget", None)
        return data

    def add(self, input_tokens: int, output_tokens: int, cost_usd: float) -> None:
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        self.cost_usd = round(self.cost_usd + cost_usd, 10)


class Citation(BaseModel):
    source: str
    title: str
    score: float


class SafetyReport(BaseModel):
    verdict: Literal["allow", "redact", "block"]
    flags: list[str] = []


class Result(BaseModel):
    """The one final answer to a request, on ``conveyor.results`` keyed by request id."""

    id: str
    status: Status
    tenant: str | None = None  # with ``id``, names the request: two tenants may use the same id
    answer: str | None = None
    citations: list[Citation] = []
    route: list[str] = []
    intent: str | None = None
    usage: Usage = Field(default_factory=Usage)
    latency_ms: float = 0.0
    trace_id: str | None = None
    safety: SafetyReport | None = None
    error: str | None = None
    output: dict[str, Any] = Field(default_factory=dict)


class DeadLetter(BaseModel):
    """A message no step could handle, with where it came from and why (``conveyor.dlq``)."""

    value: str
    value_encoding: Literal["utf-8", "base64"]
    key: str | None = None
    topic: str
    partition: int
    offset: int
    pipeline: str | None = None
    step: str
    request_id: str | None = None
    error_class: str
    error: str
    attempts: int = 0
    timestamp: float = Field(default_factory=time.time)
    size: int = 0  # bytes of the original value
    sha256: str = ""  # of the original value: identifies it when ``value`` is only its head
    truncated: bool = False  # ``value`` holds only the head of the original (it was too large to carry)
    redacted: list[str] = []  # PII kinds masked in ``value`` (CONVEYOR_STORE_RAW_PII=true keeps them)

    @staticmethod
    def text_of(raw: bytes | None) -> tuple[str, Literal["utf-8", "base64"]]:
        raw = raw or b""
        try:
            return raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode("ascii"), "base64"

    @staticmethod
    def fingerprint(raw: bytes | None) -> tuple[int, str]:
        raw = raw or b""
        return len(raw), hashlib.sha256(raw).hexdigest()


class Frame(BaseModel):
    """One level of parallel branches: which fan-out started this branch and where the branches meet.

    A branch keeps its own outputs in ``local`` (parallel branches do not merge into the state);
    ``last`` is the output of its latest step, which is what the join receives. ``route`` and
    ``usage`` of a branch start empty; the join adds them to the ``base_*`` it was fanned out with.
    """

    fanout: str
    join: str
    kind: Literal["static", "map"]
    pass_id: str  # unique per fan-out execution (a fan-out inside a loop runs once per pass)
    branch: str  # the branch's start node (static) or the item's index (map)
    expected: list[str]
    started_at: float
    timeout_s: float | None = None
    local: dict[str, Any] = {}
    last: dict[str, Any] = {}
    failed: str | None = None  # why the branch failed: it arrives at the join as missing
    base_route: list[str] = []
    base_usage: Usage = Field(default_factory=Usage)
    base_visits: dict[str, int] = {}


class Envelope(BaseModel):
    """What travels between steps: the request, the route so far and every step's output."""

    request: Request
    trace_id: str
    published_at: float
    request_offset: int = -1  # offset on conveyor.requests: publish order within a partition
    deadline: float | None = None
    route: list[str] = []
    state: dict[str, Any] = {}
    usage: Usage = Field(default_factory=Usage)
    frames: list[Frame] = []  # open fan-outs, innermost last
    visits: dict[str, int] = {}  # runs of each node so far on this path (bounded loops)
    tick: bool = False  # a join's timeout firing (sent by the join's own timer), not a branch arriving

    def view(self) -> dict[str, Any]:
        """The state as a step sees it: the request's fields, the state, then each open branch's own outputs."""
        r = self.request
        out = {"text": r.text, "tenant": r.tenant, "session": r.session, "metadata": r.metadata, **self.state}
        for frame in self.frames:
            out.update(frame.local)
        return out

    def merge(self, output: dict[str, Any]) -> None:
        """Merge a step's output where it belongs: the innermost branch, or the state."""
        if self.frames:
            self.frames[-1].local.update(output)
            self.frames[-1].last = output
        else:
            self.state.update(output)

    def branch_path(self) -> str:
        return ";".join(f"{f.pass_id}/{f.branch}" for f in self.frames)


def encode(model: BaseModel) -> bytes:
    return orjson.dumps(model.model_dump(mode="json"))


def _reason(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "(message)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def decode(raw: bytes | None, model: type[M]) -> M:
    """Parse and validate ``raw``; raises EnvelopeDecodeError saying what is wrong (and the id if known)."""
    if raw is None:
        raise EnvelopeDecodeError("empty message (null value)")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise EnvelopeDecodeError(f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise EnvelopeDecodeError(f"expected a JSON object, got {type(data).__name__}")
    request_id = data.get("id") if isinstance(data.get("id"), str) else None
    if request_id is None and isinstance(data.get("request"), dict):
        rid = data["request"].get("id")
        request_id = rid if isinstance(rid, str) else None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise EnvelopeDecodeError(f"invalid {model.__name__}: {_reason(exc)}", request_id) from None
