"""Model tiers and per-tenant budgets (DESIGN.md §6), decided before a model-calling node runs its step.

Settings name the tiers (``CONVEYOR_TIERS``: a model and its prices each), the budgets
(``CONVEYOR_BUDGETS``: USD per UTC day per tenant, ``"*"`` for every other tenant) and what
happens over budget (``CONVEYOR_OVER_BUDGET``: ``reject``, or the tier to fall back to, ``cheap``
by default). A node picks its tier with a rule over the request's state::

    - name: generation
      step: generation
      tier: {default: strong, cheap_when: {intent: [smalltalk, howto]}}

``<tier>_when`` conditions are tried in the order written; the first whose fields all match wins,
else ``default``. A field is a state or request field (``intent``, ``tenant``, ``metadata.plan``);
it matches when its value is one of the listed ones (for a list value: when one of its items is).
``tier: cheap`` alone is a fixed tier.

Which nodes are gated: those with ``tier:``, and those whose step class declares
``calls_model = True``. Before such a node runs, :meth:`BudgetGate.choose` looks up the tenant's
spend today in a :class:`~streams.spend.SpendView`; at or over its budget the node runs on the
over-budget tier, or the request ends ``rejected`` with a message naming the tenant, its spend,
its budget and the settings to change. The step gets the tier's model as ``ctx.model`` (``None``
when ``CONVEYOR_TIERS`` does not define the tier: the configured default model).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, model_validator

from streams.errors import GraphError

if TYPE_CHECKING:
    from steps.base import StepContext
    from streams.app import Settings
    from streams.envelope import Envelope
    from streams.graph import GraphSpec, Node
    from streams.metrics import Metrics
    from streams.spend import SpendView
    from streams.tracing import StepTrace

__all__ = [
    "REJECT",
    "WILDCARD",
    "BudgetGate",
    "Reason",
    "Tier",
    "TierChoice",
    "TierRule",
    "before_step",
    "calls_model",
    "check_tiers",
    "gate_for",
    "note_spend",
]

log = logging.getLogger(__name__)

REJECT = "reject"  # CONVEYOR_OVER_BUDGET=reject
WILDCARD = "*"  # CONVEYOR_BUDGETS key for every tenant not named
TIER_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
WHEN = "_when"
READY_WAIT_S = 15.0  # how long a gated node waits for the spend view's first catch-up before deciding without it
Reason = Literal["rule", "default", "budget"]


class Tier(BaseModel):
    """One ``CONVEYOR_TIERS`` entry: the model a tier calls and its prices (USD per million tokens).

    Prices left out come from ``CONVEYOR_PRICES``; given, they replace that table's entry for the model.
    A bare string is the model alone: ``{"cheap": "gpt-4o-mini"}``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1)
    input_usd_per_mtok: float | None = Field(default=None, ge=0)
    output_usd_per_mtok: float | None = Field(default=None, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _from_model_name(cls, data: Any) -> Any:
        return {"model": data} if isinstance(data, str) else data

    def prices(self, table: Mapping[str, tuple[float, float]]) -> tuple[float, float]:
        """(input, output) USD per million tokens: this tier's, filling gaps from ``table``."""
        known_in, known_out = table.get(self.model, (0.0, 0.0))
        return (
            known_in if self.input_usd_per_mtok is None else self.input_usd_per_mtok,
            known_out if self.output_usd_per_mtok is None else self.output_usd_per_mtok,
        )


Scalar = str | int | float | bool


class TierRule(BaseModel):
    """A node's ``tier:``: ``default``, unless a ``<tier>_when`` condition holds over the state."""

    model_config = ConfigDict(extra="allow", frozen=True)

    default: str

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data: Any) -> Any:
        return {"default": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _check(self) -> TierRule:
        if not TIER_NAME.match(self.default):
            raise ValueError(f"default {self.default!r} must be a tier name matching {TIER_NAME.pattern}")
        for key, condition in (self.model_extra or {}).items():
            tier = key[: -len(WHEN)] if key.endswith(WHEN) else ""
            if not TIER_NAME.match(tier):
                raise ValueError(
                    f"unknown key {key!r}: a tier rule has `default` and `<tier>_when` keys, "
                    "e.g. {default: strong, cheap_when: {intent: [smalltalk, howto]}}"
                )
            if not isinstance(condition, dict) or not condition:
                raise ValueError(f"{key} must map state fields to the values that select {tier!r}, e.g. {{intent: [smalltalk]}}")
            for fld, values in condition.items():
                listed = values if isinstance(values, list) else [values]
                if not isinstance(fld, str) or not fld or not listed or not all(isinstance(v, Scalar) for v in listed):
                    raise ValueError(f"{key}.{fld}: give a value or a list of values (strings, numbers, booleans)")
        return self

    def conditions(self) -> list[tuple[str, dict[str, list[Scalar]]]]:
        """``(tier, {field: values})`` in the order written."""
        out = []
        for key, condition in (self.model_extra or {}).items():
            out.append((key[: -len(WHEN)], {f: v if isinstance(v, list) else [v] for f, v in condition.items()}))
        return out

    def tiers(self) -> list[str]:
        """Every tier the rule can pick."""
        return list(dict.fromkeys([self.default, *(tier for tier, _ in self.conditions())]))

    def choose(self, state: Mapping[str, Any]) -> tuple[str, Reason]:
        """The tier for ``state``, and whether a condition (``rule``) or the ``default`` chose it."""
        for tier, condition in self.conditions():
            if all(_matches(_lookup(state, f), values) for f, values in condition.items()):
                return tier, "rule"
        return self.default, "default"


_MISSING = object()


def _lookup(state: Mapping[str, Any], path: str) -> Any:
    value: Any = state
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _matches(value: Any, values: list[Scalar]) -> bool:
    if value is _MISSING:
        return False
    if isinstance(value, list):
        return any(_matches(v, values) for v in value)
    try:
        return value in values
    except TypeError:  # an unhashable value (a dict): it equals no scalar
        return False


def check_tiers(spec: GraphSpec, tiers: Mapping[str, Tier], source: str | None = None) -> None:
    """Every tier a node's rule names must be in ``CONVEYOR_TIERS``, when tiers are configured.

    Run where the settings are known (the worker compiling its apps, ``streams.testing``): a
    pipeline file is valid on its own, and its tier names are checked against the deployment's.
    """
    if not tiers:
        return
    where = source or f"pipeline {spec.name!r}"
    for node in spec.nodes:
        rule: TierRule | None = getattr(node, "tier", None)
        if rule is None:
            continue
        for tier in rule.tiers():
            if tier not in tiers:
                raise GraphError(
                    f"{where}, node {node.name!r}, field tier: tier {tier!r} is not in CONVEYOR_TIERS "
                    f"(defined: {', '.join(sorted(tiers))}); define it there or change the rule"
                )


def calls_model(step: Any) -> bool:
    """Whether a node's step declares ``calls_model = True`` (a runner's target, or the object itself)."""
    target = getattr(getattr(step, "definition", None), "target", step)
    return bool(getattr(target, "calls_model", False))


@dataclass(frozen=True)
class TierChoice:
    """What :meth:`BudgetGate.choose` decided for one execution of a gated node."""

    tier: str | None  # None: no rule and no budget action (the configured default model)
    model: str | None  # the tier's model; None: the configured default
    reason: Reason
    over_budget: bool = False
    rejected: str | None = None  # why the call is refused (CONVEYOR_OVER_BUDGET=reject)
    spent_usd: float | None = None  # the tenant's spend today as seen, when it has a budget
    budget_usd: float | None = None

    @property
    def budget(self) -> str | None:
        """What the budget did: ``"rejected"``, the tier it forced (e.g. ``"cheap"``), or None."""
        if self.rejected is not None:
            return "rejected"
        return self.tier if self.over_budget else None


class BudgetGate:
    """Chooses the tier of a gated node's execution and enforces the tenant's daily budget."""

    def __init__(
        self, tiers: Mapping[str, Tier], budgets: Mapping[str, float], over_budget: str,
        view: SpendView | None = None, clock: Callable[[], float] = time.time, ready_wait_s: float = READY_WAIT_S,
    ) -> None:
        self.tiers = dict(tiers)
        self.budgets = dict(budgets)
        self.over_budget = over_budget
        self.view = view
        self.clock = clock
        self.ready_wait_s = ready_wait_s
        self._warned_unready = False

    def applies(self, rule: TierRule | None, step: Any) -> bool:
        """Whether a node is gated: it has a tier rule, or its step calls a model."""
        return rule is not None or calls_model(step)

    def budget_for(self, tenant: str) -> float | None:
        """USD per day for ``tenant`` (its own entry, else ``"*"``), or None: no budget."""
        return self.budgets.get(tenant, self.budgets.get(WILDCARD))

    async def choose(
        self, rule: TierRule | None, state: Mapping[str, Any], tenant: str, request_key: str, request_cost: float,
    ) -> TierChoice:
        """The tier (and model) for this execution; ``rejected`` set when the budget refuses it.

        ``request_cost`` is what the request has cost so far: counted here although its ledger
        entry is written only when it ends.
        """
        tier, reason = rule.choose(state) if rule is not None else (None, "default")
        budget = self.budget_for(tenant)
        if budget is None or self.view is None:
            return TierChoice(tier, self._model(tier), reason)
        await self._wait_for_view()
        now = self.clock()
        self.view.note(tenant, request_key, request_cost, now)
        spent = self.view.spent(tenant, now)
        if spent < budget:
            return TierChoice(tier, self._model(tier), reason, spent_usd=spent, budget_usd=budget)
        if self.over_budget == REJECT:
            message = (
                f"tenant {tenant!r} has spent ${spent:.6f} today (UTC), at or over its budget of ${budget:.6f} per day "
                f"(CONVEYOR_BUDGETS), and CONVEYOR_OVER_BUDGET=reject refuses its model calls until the day ends: "
                "raise its budget, or set CONVEYOR_OVER_BUDGET to a cheaper tier (e.g. cheap) to answer with that"
            )
            return TierChoice(tier, None, "budget", over_budget=True, rejected=message, spent_usd=spent,
                              budget_usd=budget)
        forced = self.over_budget
        return TierChoice(forced, self._model(forced), "budget", over_budget=True, spent_usd=spent, budget_usd=budget)

    def note(self, tenant: str, request_key: str, request_cost: float) -> None:
        """The request's cost so far, counted at once by this process (before its ledger entry arrives)."""
        if self.view is not None and self.budget_for(tenant) is not None:
            self.view.note(tenant, request_key, request_cost, self.clock())

    def _model(self, tier: str | None) -> str | None:
        spec = self.tiers.get(tier) if tier is not None else None
        return spec.model if spec is not None else None

    async def _wait_for_view(self) -> None:
        assert self.view is not None
        if self.view.is_ready() or self._warned_unready:  # waited once already: do not hold every request
            return
        try:
            await asyncio.wait_for(self.view.wait_ready(), self.ready_wait_s)
        except asyncio.TimeoutError:
            if not self._warned_unready:
                self._warned_unready = True
                log.warning("the spend view has not caught up with conveyor.ledger after %.0fs: budgets are "
                            "checked against the spend read so far", self.ready_wait_s)


def gate_for(settings: Settings, view: SpendView | None, clock: Callable[[], float] = time.time) -> BudgetGate:
    """The gate the settings describe; ``view`` is where spend is read (None: budgets are not enforced)."""
    return BudgetGate(settings.tiers, settings.budgets, settings.over_budget, view if settings.budgets else None, clock)


async def before_step(gate: BudgetGate | None, node: Node, step: Any, env: Envelope, ctx: StepContext,
                      trace: StepTrace, metrics: Metrics) -> TierChoice | None:
    """Before a gated node's step: its tier into ``ctx``, the result's usage, the span and the metrics.

    Returns the choice when the budget refuses the call (the caller ends the request ``rejected``).
    """
    if gate is None or not gate.applies(node.tier, step):
        return None
    from streams.tracing import BUDGET, BUDGET_LIMIT, BUDGET_SPENT, TIER

    pipeline, tenant = trace.pipeline, env.request.tenant
    choice = await gate.choose(node.tier, env.view(), tenant, env.request.request_key(), env.usage.cost_usd)
    if choice.spent_usd is not None:
        metrics.record_budget(pipeline, tenant, choice.spent_usd, rejected=choice.rejected is not None)
        trace.attributes.update({BUDGET_SPENT: round(choice.spent_usd, 8), BUDGET_LIMIT: choice.budget_usd})
    if choice.budget is not None:
        env.usage.budget = trace.attributes[BUDGET] = choice.budget
    if choice.rejected is not None:
        return choice
    ctx.model, ctx.tier = choice.model, choice.tier
    if choice.tier is not None:
        env.usage.tiers[node.name] = trace.attributes[TIER] = choice.tier
        metrics.record_tier(pipeline, node.name, choice.tier, choice.reason)
    return None


def note_spend(gate: BudgetGate | None, env: Envelope, ctx: StepContext) -> None:
    """After a step that recorded usage: count the request's cost so far towards its tenant's budget at once."""
    if gate is not None and ctx.usage:
        gate.note(env.request.tenant, env.request.request_key(), env.usage.cost_usd)
