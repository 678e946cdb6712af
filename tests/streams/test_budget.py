"""Model tiers and per-tenant budgets: the rule, the settings, the spend view, the decision, and the support pipeline in-process."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from steps.deps import Deps, ResourceConfig
from steps.generation import cost_usd
from steps.registry import resolve
from streams.app import Settings
from streams.budget import BudgetGate, Tier, TierRule, check_tiers, gate_for
from streams.errors import GraphError
from streams.pipeline_file import load_pipeline, parse_pipeline
from streams.spend import SpendView, utc_day
from streams.testing import Run, run_pipeline

FLOWS = Path(__file__).resolve().parent / "flows"
SUPPORT_TIERS = FLOWS / "support-tiers.yaml"
TIERS = {"cheap": {"model": "cheap-model", "input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0},
         "strong": {"model": "strong-model", "input_usd_per_mtok": 10.0, "output_usd_per_mtok": 40.0}}
STRONG_COST = (120 * 10.0 + 12 * 40.0) / 1e6  # FakeLLM bills 120 prompt and 12 completion tokens per call
CHEAP_COST = (120 * 1.0 + 12 * 2.0) / 1e6
NOON = 1_780_000_000.0  # a fixed instant (2026-05-28 ~20:26 UTC)


def entry(tenant: str, request_id: str, cost: float) -> bytes:
    return orjson.dumps({"tenant": tenant, "request_id": request_id, "pipeline": "support", "status": "ok",
                         "input_tokens": 1, "output_tokens": 1, "cost_usd": cost})


# -- the rule ----------------------------------------------------------------------------------


def test_rule_picks_the_first_matching_condition_else_the_default() -> None:
    rule = TierRule.model_validate({"default": "strong", "cheap_when": {"intent": ["smalltalk", "howto"]},
                                    "mid_when": {"intent": "explain", "metadata.plan": ["pro"]}})
    assert rule.choose({"intent": "smalltalk"}) == ("cheap", "rule")
    assert rule.choose({"intent": "explain", "metadata": {"plan": "pro"}}) == ("mid", "rule")
    assert rule.choose({"intent": "explain", "metadata": {"plan": "free"}}) == ("strong", "default")  # all fields must match
    assert rule.choose({"intent": "explain"}) == ("strong", "default")  # a missing field matches nothing
    assert rule.choose({"intent": ["error", "howto"]}) == ("cheap", "rule")  # a list value: any item
    assert rule.choose({"intent": {"not": "hashable"}}) == ("strong", "default")
    assert rule.tiers() == ["strong", "cheap", "mid"]
    assert TierRule.model_validate("cheap").choose({"intent": "smalltalk"}) == ("cheap", "default")


@pytest.mark.parametrize(("tier", "message"), [
    ({"default": "strong", "cheap_if": {"intent": ["x"]}}, "field tier: .*unknown key 'cheap_if'"),
    ({"cheap_when": {"intent": ["x"]}}, "field tier.default: Field required"),
    ({"default": "strong", "cheap_when": ["smalltalk"]}, "cheap_when must map state fields"),
    ({"default": "strong", "cheap_when": {"intent": []}}, r"cheap_when.intent: give a value or a list"),
    ({"default": "Strong Tier"}, "must be a tier name"),
])
def test_bad_rules_are_load_errors_naming_the_node_and_field(tier: Any, message: str) -> None:
    data = {"name": "p", "entry": "a", "nodes": [{"name": "a", "step": "echo", "tier": tier}]}
    with pytest.raises(GraphError, match=f"^flow.yaml, node 'a', {message}" if message.startswith("field") else message):
        parse_pipeline(data, "flow.yaml")


def test_tier_names_are_checked_against_configured_tiers() -> None:
    spec = load_pipeline(SUPPORT_TIERS)
    check_tiers(spec, {})  # no tiers configured: a rule's tier is recorded, the model is the default one
    check_tiers(spec, {name: Tier.model_validate(t) for name, t in TIERS.items()})
    with pytest.raises(GraphError, match=r"node 'generation', field tier: tier 'strong' is not in CONVEYOR_TIERS "
                                         r"\(defined: cheap, fast\)"):
        check_tiers(spec, {"cheap": Tier(model="a"), "fast": Tier(model="b")})
    with pytest.raises(GraphError, match="tier 'strong' is not in CONVEYOR_TIERS"):
        run_pipeline(SUPPORT_TIERS, [], settings=Settings(tiers={"cheap": "a"}), deps=object())


# -- settings ----------------------------------------------------------------------------------


def test_settings_from_the_environment_and_tier_prices_feed_the_price_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_TIERS", orjson.dumps({**TIERS, "mini": "gpt-4o-mini"}).decode())
    monkeypatch.setenv("CONVEYOR_BUDGETS", '{"acme": 0.5, "*": 10}')
    monkeypatch.setenv("CONVEYOR_OVER_BUDGET", "reject")
    s = Settings()
    assert s.tiers["cheap"].model == "cheap-model" and s.tiers["mini"] == Tier(model="gpt-4o-mini")
    assert s.budgets == {"acme": 0.5, "*": 10.0} and s.over_budget == "reject"
    assert s.prices["strong-model"] == (10.0, 40.0) and s.prices["cheap-model"] == (1.0, 2.0)
    assert s.prices["gpt-4o-mini"] == (0.15, 0.60)  # a tier without prices keeps the table's
    assert Settings(tiers={"x": {"model": "gpt-4o", "output_usd_per_mtok": 1}}).prices["gpt-4o"] == (2.5, 1.0)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"budgets": {"acme": 1}}, "'cheap' is not a tier .*CONVEYOR_OVER_BUDGET must be 'reject' or a tier"),
    ({"budgets": {"acme": 1}, "tiers": TIERS, "over_budget": "tiny"}, "'tiny' is not a tier .*'cheap', 'strong'"),
    ({"budgets": {"acme": -1}, "tiers": TIERS}, "budget of 'acme' is negative"),
    ({"tiers": {"Cheap Tier": "m"}}, "tier name 'Cheap Tier' must match"),
])
def test_inconsistent_budget_settings_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings(**kwargs)
    Settings(budgets={"acme": 1}, over_budget="reject")  # rejecting needs no tier


# -- the spend view ----------------------------------------------------------------------------


def test_spend_view_folds_per_tenant_and_utc_day_once_per_request() -> None:
    view = SpendView()
    assert view.apply(entry("acme", "r1", 0.25), NOON)
    assert not view.apply(entry("acme", "r1", 0.25), NOON + 5)  # a re-sent entry (the final step re-ran)
    assert view.apply(entry("acme", "r2", 0.5), NOON + 10)
    assert view.apply(entry("other", "r1", 1.0), NOON + 10)  # the same id from another tenant is another request
    assert not view.apply(b"not json", NOON) and not view.apply(orjson.dumps({"tenant": "x"}), NOON)
    assert view.spent("acme", NOON + 20) == pytest.approx(0.75)
    assert view.spent("other", NOON + 20) == pytest.approx(1.0) and view.spent("nobody", NOON) == 0.0
    tomorrow = NOON + 86_400
    assert view.spent("acme", tomorrow) == 0.0  # budgets are per UTC day
    view.apply(entry("acme", "r3", 0.1), tomorrow)
    assert view.data == {utc_day(NOON): {"acme": 0.75, "other": 1.0}, utc_day(tomorrow): {"acme": 0.1}}
    view.apply(entry("acme", "r4", 0.1), tomorrow + 86_400)
    assert utc_day(NOON) not in view.data  # only the last two days are kept


def test_this_process_counts_its_own_costs_until_the_ledger_entry_replaces_them() -> None:
    view = SpendView(dedupe_window_s=60)
    view.note("acme", "acme/r1", 0.2, NOON)
    view.note("acme", "acme/r1", 0.3, NOON + 1)  # cumulative: the request's cost so far
    view.note("acme", "acme/r2", 0.1, NOON + 1)
    assert view.spent("acme", NOON + 2) == pytest.approx(0.4)
    view.apply(entry("acme", "r1", 0.35), NOON + 3)  # the ledger's figure replaces the pending one
    assert view.spent("acme", NOON + 4) == pytest.approx(0.45)
    view.note("acme", "acme/r1", 0.35, NOON + 5)  # a late note for a request already in the ledger: not twice
    assert view.spent("acme", NOON + 5) == pytest.approx(0.45)
    assert view.spent("acme", NOON + 100) == pytest.approx(0.35)  # r2's entry never came: counted for a while only


# -- the decision --------------------------------------------------------------------------------


def gate(over_budget: str = "cheap", budgets: dict[str, float] | None = None, view: SpendView | None = None) -> BudgetGate:
    tiers = {name: Tier.model_validate(t) for name, t in TIERS.items()}
    return BudgetGate(tiers, {"acme": 1.0, "*": 5.0} if budgets is None else budgets, over_budget,
                      view if view is not None else SpendView(), clock=lambda: NOON)


RULE = TierRule.model_validate({"default": "strong", "cheap_when": {"intent": ["smalltalk"]}})


def choose(g: BudgetGate, tenant: str = "acme", state: dict[str, Any] | None = None, cost: float = 0.0) -> Any:
    return asyncio.run(g.choose(RULE, state or {"intent": "howto"}, tenant, f"{tenant}/r-x", cost))


def test_within_budget_the_rule_decides() -> None:
    view = SpendView()
    view.apply(entry("acme", "r1", 0.4), NOON)
    g = gate(view=view)
    c = choose(g)
    assert (c.tier, c.model, c.reason, c.budget, c.spent_usd, c.budget_usd) == ("strong", "strong-model", "default", None, 0.4, 1.0)
    assert choose(g, state={"intent": "smalltalk"}).tier == "cheap"
    assert choose(g, cost=0.7).budget == "cheap"  # the request's own cost so far counts


def test_over_budget_goes_to_the_cheap_tier() -> None:
    view = SpendView()
    view.apply(entry("acme", "r1", 1.0), NOON)  # exactly the budget: over
    view.apply(entry("globex", "r1", 4.0), NOON)
    c = choose(gate(view=view))
    assert (c.tier, c.model, c.reason, c.over_budget, c.budget, c.rejected) == ("cheap", "cheap-model", "budget", True, "cheap", None)
    assert choose(gate(view=view), tenant="globex").tier == "strong"  # "*": 5.0 applies to tenants not named
    assert choose(gate(budgets={"acme": 0.0}), tenant="acme").budget == "cheap"  # budget 0: always the cheap tier
    assert choose(gate(budgets={"acme": 1.0}, view=view), tenant="globex").budget is None  # no budget, no limit


def test_over_budget_with_reject_names_the_tenant_budget_and_settings() -> None:
    view = SpendView()
    view.apply(entry("acme", "r1", 1.25), NOON)
    c = choose(gate("reject", view=view))
    assert c.budget == "rejected" and c.model is None
    assert c.rejected is not None
    for part in ("tenant 'acme'", "$1.250000 today", "budget of $1.000000 per day", "CONVEYOR_BUDGETS",
                 "CONVEYOR_OVER_BUDGET=reject"):
        assert part in c.rejected


def test_a_gate_without_a_view_enforces_no_budget_and_waits_for_a_loading_view() -> None:
    g = gate_for(Settings(tiers=TIERS), SpendView())  # no CONVEYOR_BUDGETS: tiers only
    c = asyncio.run(g.choose(RULE, {"intent": "howto"}, "acme", "acme/r", 99.0))
    assert (c.tier, c.model, c.budget, c.spent_usd) == ("strong", "strong-model", None, None)

    async def loading() -> Any:
        view = SpendView()
        view.mark_loading()
        g = gate(view=view)
        task = asyncio.ensure_future(g.choose(RULE, {"intent": "howto"}, "acme", "acme/r", 0.0))
        await asyncio.sleep(0.01)
        assert not task.done()  # the decision waits for the view's first catch-up
        view.apply(entry("acme", "old", 2.0), NOON)
        view.mark_ready()
        return await task

    assert asyncio.run(loading()).budget == "cheap"


# -- the support pipeline in-process, against an OpenAI-compatible loopback server -----------------


@pytest.fixture
def llm_deps(fake_llm: Any, warm: dict[str, Any], tmp_path: Path) -> Any:
    def make(settings: Settings) -> tuple[Deps, Any]:
        config = ResourceConfig(index_dir=tmp_path, llm_provider="openai", llm_base_url=fake_llm.base_url,
                                llm_model="default-model", prices=dict(settings.prices))
        deps = Deps(config, embedder=warm["deps"].embedder)
        generation = resolve("generation").build({})  # warmed by the run with these deps (the shared one is offline)

        def build(ref: str, config: dict[str, Any]) -> Any:
            return generation if ref == "generation" else warm[ref]

        return deps, build

    return make


def run_support(llm_deps: Any, fake_llm: Any, settings: Settings, requests: list[dict[str, Any]],
                spend: SpendView | None = None) -> tuple[Run, list[str]]:
    deps, build = llm_deps(settings)
    before = len(fake_llm.requests)
    try:
        outcome = run_pipeline(SUPPORT_TIERS, requests, settings=settings, deps=deps, build_step=build, spend=spend)
    finally:
        asyncio.run(deps.provider().close())  # not deps.close(): the embedder is the shared warm one
    return outcome, [r["model"] for r in fake_llm.requests[before:]]


def span(outcome: Run, request_id: str, step: str) -> dict[str, Any]:
    (found,) = [s for s in outcome.spans if s["request_id"] == request_id and s["step"] == step]
    return found


def test_the_generation_node_calls_the_model_of_the_tier_its_rule_picks(llm_deps: Any, fake_llm: Any) -> None:
    settings = Settings(tiers=TIERS)
    outcome, models = run_support(llm_deps, fake_llm, settings, [
        {"id": "hi", "text": "Hello there!"},
        {"id": "q", "text": "How do I parse a JSON string into a Python object?"},
    ])
    hi, q = outcome.results
    assert models == ["cheap-model", "strong-model"]  # smalltalk first in the queue, then the question
    assert hi.status == q.status == "ok"
    assert hi.usage.tiers == {"generation": "cheap"} and q.usage.tiers == {"generation": "strong"}
    assert hi.usage.budget is None and q.usage.budget is None
    assert hi.usage.cost_usd == pytest.approx(CHEAP_COST) and q.usage.cost_usd == pytest.approx(STRONG_COST)
    assert q.usage.cost_usd == pytest.approx(cost_usd(settings.prices, "strong-model", 120, 12))
    assert span(outcome, "q", "generation")["conveyor.tier"] == "strong"
    assert span(outcome, "q", "generation")["gen_ai.request.model"] == "strong-model"
    assert "conveyor.tier" not in span(outcome, "q", "retrieval")  # only gated nodes get a tier
    assert outcome.metrics is not None
    text = outcome.metrics.exposition().decode()
    assert 'conveyor_tier_decisions_total{pipeline="support",reason="rule",step="generation",tier="cheap"} 1.0' in text
    assert 'conveyor_tier_decisions_total{pipeline="support",reason="default",step="generation",tier="strong"} 1.0' in text


def test_a_tenant_over_its_budget_is_moved_to_the_cheap_tier(llm_deps: Any, fake_llm: Any) -> None:
    settings = Settings(tiers=TIERS, budgets={"acme": STRONG_COST * 1.5})
    question = "How do I parse a JSON string into a Python object?"
    outcome, models = run_support(llm_deps, fake_llm, settings, [
        {"id": "a1", "tenant": "acme", "text": question},  # spent 0: strong
        {"id": "a2", "tenant": "acme", "text": question},  # spent 1 x strong, under 1.5: strong
        {"id": "a3", "tenant": "acme", "text": question},  # spent 2 x strong: over, cheap
        {"id": "g1", "tenant": "globex", "text": question},  # no budget: strong
    ])
    by_id = {r.id: r for r in outcome.results}
    assert models == ["strong-model", "strong-model", "cheap-model", "strong-model"]
    assert [by_id[i].usage.budget for i in ("a1", "a2", "a3", "g1")] == [None, None, "cheap", None]
    assert by_id["a3"].status == "ok" and by_id["a3"].usage.tiers == {"generation": "cheap"}
    assert by_id["a3"].usage.cost_usd == pytest.approx(CHEAP_COST)
    gen = span(outcome, "a3", "generation")
    assert (gen["conveyor.tier"], gen["conveyor.budget"]) == ("cheap", "cheap")
    assert gen["conveyor.budget.spent_usd"] == pytest.approx(2 * STRONG_COST)
    text = outcome.metrics.exposition().decode()  # type: ignore[union-attr]
    assert 'conveyor_tier_decisions_total{pipeline="support",reason="budget",step="generation",tier="cheap"} 1.0' in text
    assert 'conveyor_tenant_spend_usd{tenant="acme"}' in text


def test_spend_already_in_the_ledger_today_counts(llm_deps: Any, fake_llm: Any) -> None:
    spend = SpendView()
    spend.apply(entry("acme", "earlier", 0.02), time.time())
    settings = Settings(tiers=TIERS, budgets={"*": 0.01})
    outcome, models = run_support(llm_deps, fake_llm, settings, [
        {"id": "a", "tenant": "acme", "text": "How do I read a JSON file?"},
        {"id": "b", "tenant": "initech", "text": "How do I read a JSON file?"},
    ], spend=spend)
    assert models == ["cheap-model", "strong-model"]
    assert [r.usage.budget for r in outcome.results] == ["cheap", None]
    assert spend.spent("acme", time.time()) == pytest.approx(0.02 + CHEAP_COST)  # the run's ledger entries fed the view


def test_over_budget_with_reject_ends_the_request_rejected_before_the_model_is_called(llm_deps: Any, fake_llm: Any) -> None:
    settings = Settings(tiers=TIERS, budgets={"acme": STRONG_COST / 2}, over_budget="reject")
    outcome, models = run_support(llm_deps, fake_llm, settings, [
        {"id": "a1", "tenant": "acme", "text": "How do I parse a JSON string into a Python object?"},
        {"id": "a2", "tenant": "acme", "text": "How do I parse a JSON string into a Python object?"},
        {"id": "a3", "tenant": "acme", "text": "How do I parse a JSON string into a Python object?"},
    ])
    by_id = {r.id: r for r in outcome.results}
    assert models == ["strong-model"]  # only a1 reached the model
    assert by_id["a1"].status == "ok" and by_id["a1"].usage.budget is None
    for rid in ("a2", "a3"):
        r = by_id[rid]
        assert r.status == "rejected" and r.answer is None and r.usage.budget == "rejected"
        assert r.route[-1] == "generation (over budget)" and r.usage.cost_usd == 0.0
        assert r.error is not None and r.error.startswith("generation: tenant 'acme' has spent $")
        assert "CONVEYOR_BUDGETS" in r.error and "CONVEYOR_OVER_BUDGET=reject" in r.error
    assert outcome.dead_letters == []  # a refusal is an answer, not a failure
    gen = span(outcome, "a2", "generation")
    assert gen["status"] == "rejected" and gen["conveyor.budget"] == "rejected" and "tenant 'acme'" in gen["error"]
    text = outcome.metrics.exposition().decode()  # type: ignore[union-attr]
    assert 'conveyor_budget_rejections_total{pipeline="support",tenant="acme"} 2.0' in text
    assert 'conveyor_step_messages_total{pipeline="support",status="rejected",step="generation"} 2.0' in text


def test_reject_applies_whatever_tier_the_rule_picks(llm_deps: Any, fake_llm: Any) -> None:
    spend = SpendView()
    spend.apply(entry("acme", "earlier", 0.5), time.time())
    settings = Settings(tiers=TIERS, budgets={"acme": 0.5}, over_budget="reject")
    outcome, models = run_support(llm_deps, fake_llm, settings, [{"id": "hi", "tenant": "acme", "text": "Hello there!"}],
                                  spend=spend)
    (hi,) = outcome.results
    assert models == [] and hi.status == "rejected" and hi.route == ["classification", "generation (over budget)"]
    assert "$0.500000 today" in (hi.error or "")


def test_the_ledger_follower_keeps_trying_while_no_broker_answers() -> None:
    import inspect

    from streams.spend import LedgerFollower

    follower = LedgerFollower(["127.0.0.1:1"], retry_s=0.05)
    assert not inspect.signature(follower.run).parameters  # a Faust task: one taking a parameter is passed the app

    async def go() -> None:
        task = asyncio.ensure_future(follower.run())
        await asyncio.sleep(0.5)
        assert not task.done()  # still retrying, not crashed
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())
    assert not follower.view.is_ready() and follower._consumer is None
