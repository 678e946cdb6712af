"""The step contract: the models, context and errors every step (built-in or a user's) works with.

A step is an async function, or a class for steps that load models, with a pydantic input and
output, declared with ``@step("name")`` (:mod:`steps.registry`, exported from ``streams``). A class
step's ``__init__`` takes only JSON-able configuration; heavy loading (models, indexes) goes in
``warm_up(deps)`` (:class:`steps.deps.Deps`), which the runtime calls once per process before the
step sees its first message.

A branching step puts its route in a ``route`` field of its output (a ``Literal``), and the
pipeline graph maps route values to the next step. Steps never import Kafka or Faust: they
see plain models in and out, so they can be tested in milliseconds.

Errors (raise them from ``run``; ``streams.policy`` decides what happens next)::

    StepError
    ├── RetryableStepError   transient (HTTP 429/5xx, timeouts): retried with backoff
    │                        (at least ``retry_after_s`` when the dependency said how long)
    ├── FatalStepError       the input can never succeed: no retry, straight to failed + DLQ
    └── RejectedStepError    the step refuses the request on purpose (a missing setting, a policy):
                             no retry, no dead letter, the result is ``rejected`` with the message
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

__all__ = [
    "FatalStepError",
    "RejectedStepError",
    "RetryableStepError",
    "Step",
    "StepContext",
    "StepError",
    "StepModel",
    "SubSpan",
    "Turn",
    "UsageRecord",
]


class StepError(Exception):
    """Root of the errors a step raises on purpose."""


class RetryableStepError(StepError):
    """A transient failure: the runtime retries the step with exponential backoff.

    ``retry_after_s`` is the dependency's own hint (an HTTP ``Retry-After``): the runtime waits at
    least that long before the next attempt, and gives up at once when the wait would pass the
    request's deadline.
    """

    def __init__(self, message: str = "", *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class FatalStepError(StepError):
    """A failure that retrying cannot fix: the request fails and its message goes to the DLQ."""


class RejectedStepError(StepError):
    """The step refuses this request by design: the result is ``rejected`` with this message (no retry, no DLQ).

    Say what the user can change, e.g. "devteam needs a model: set CONVEYOR_LLM_PROVIDER=openai".
    """


class StepModel(BaseModel):
    """Base for step Input/Output models: inputs ignore the envelope fields they do not use."""

    model_config = ConfigDict(extra="ignore")


class Turn(BaseModel):
    """One exchange of a conversation, as kept in the session history.

    ``asked_at`` is when the request was published and ``sequence`` its offset on the requests
    topic (the tie-break within a millisecond): history is kept in publish order even when a later
    turn took a shorter route through the graph and was answered first.
    """

    request_id: str
    question: str
    answer: str
    sources: list[str] = []
    passages: list[dict[str, Any]] = []
    asked_at: float = 0.0
    sequence: int = 0


@dataclass
class UsageRecord:
    """Tokens and cost of one model call made by a step."""

    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: float


@dataclass
class SubSpan:
    """One call a step made inside its execution (a tool, a model): a child span of the step's own."""

    name: str
    started_at: float
    ended_at: float
    kind: str = "tool"
    status: str = "ok"
    error: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class StepContext:
    """What a step knows about the request besides its input.

    ``deadline`` is an absolute ``time.time()`` value or ``None``; ``history`` is the
    session's conversation so far (filled only for steps that declare ``uses_history``).
    ``model`` and ``tier`` are the model the node's tier rule and the tenant's budget chose
    (``None``: the configured default); a model-calling step passes ``model`` to its provider.
    """

    request_id: str
    tenant: str = "default"
    session: str | None = None
    deadline: float | None = None
    history: list[Turn] = field(default_factory=list)
    usage: list[UsageRecord] = field(default_factory=list)
    model: str | None = None
    tier: str | None = None
    spans: list[SubSpan] = field(default_factory=list)

    def record_usage(self, model: str, input_tokens: int, output_tokens: int, cost_usd: float) -> None:
        """Record one model call; the runtime turns these into metrics, spans and the cost ledger."""
        self.usage.append(UsageRecord(model, input_tokens, output_tokens, cost_usd))

    def record_span(
        self, name: str, started_at: float, ended_at: float, *, kind: str = "tool", status: str = "ok",
        error: str | None = None, **attributes: Any,
    ) -> None:
        """Record a call made inside this step (``kind`` "tool" or "llm"); each becomes a span of its own."""
        self.spans.append(SubSpan(name, started_at, ended_at, kind, status, error, dict(attributes)))

    def cost_so_far(self) -> float:
        """USD this execution has recorded with :meth:`record_usage`."""
        return sum(u.cost_usd for u in self.usage)

    def time_left(self) -> float | None:
        """Seconds until the request's deadline, or ``None`` when it has none."""
        return None if self.deadline is None else self.deadline - time.time()


@runtime_checkable
class Step(Protocol):
    """What the runtime drives for one node (a :class:`steps.runner.StepRunner` is one)."""

    name: str
    Input: type[BaseModel]
    Output: type[BaseModel]
    uses_history: bool
    turn: Callable[..., Turn] | None

    async def warm_up(self, deps: Any) -> None: ...

    async def run(self, input: Any, ctx: StepContext) -> Any: ...
