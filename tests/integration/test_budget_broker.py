"""Model tiers and tenant budgets on the real broker: a tenant over budget goes to the cheap tier, then is rejected.

The worker's spend view follows ``conveyor.ledger`` itself (``streams.spend``). The second worker
starts with an empty view: it knows the tenant is over budget only by reading the ledger written
while the first one served, so the rejection shows that the catch-up on Tansu reads it whole.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.envelope import Result
from tests.integration.conftest import exchange, read_topic, wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SUPPORT_TIERS = ROOT / "tests" / "streams" / "flows" / "support-tiers.yaml"  # generation: {default: strong, cheap_when: smalltalk}
TIERS = {"cheap": {"model": "cheap-model", "input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0},
         "strong": {"model": "strong-model", "input_usd_per_mtok": 10.0, "output_usd_per_mtok": 40.0}}
STRONG_COST = (120 * 10.0 + 12 * 40.0) / 1e6  # the loopback LLM bills 120 prompt and 12 completion tokens per call
CHEAP_COST = (120 * 1.0 + 12 * 2.0) / 1e6
QUESTION = "How do I parse a JSON string into a Python object?"


def env(fake_llm: Any, over_budget: str, budget: float) -> dict[str, str]:
    return {"PYTHONPATH": str(ROOT), "CONVEYOR_LLM_PROVIDER": "openai", "CONVEYOR_LLM_BASE_URL": fake_llm.base_url,
            "CONVEYOR_LLM_MODEL": "default-model", "CONVEYOR_TIERS": json.dumps(TIERS),
            "CONVEYOR_BUDGETS": json.dumps({"tiny": budget}), "CONVEYOR_OVER_BUDGET": over_budget}


def ask(bootstrap: str, fake_llm: Any, request: dict[str, Any]) -> tuple[Result, list[str]]:
    """One request and its result; the models the LLM was asked for meanwhile."""
    before = len(fake_llm.requests)
    (result,) = exchange(bootstrap, [request]).values()
    return result, [r["model"] for r in fake_llm.requests[before:]]


def metric(worker: Any, name: str, **labels: str) -> float:
    text = worker.get("/metrics").decode()
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    found = re.search(rf"^{name}\{{{re.escape(want)}\}} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def spans(bootstrap: str, request_id: str, step: str) -> list[dict[str, Any]]:
    out = [orjson.loads(v) for _, v in read_topic(bootstrap, "conveyor.traces")]
    return [s for s in out if s["request_id"] == request_id and s["step"] == step]


def test_over_budget_tenant_goes_cheap_then_is_rejected(own_broker: Any, start_worker: Any, fake_llm: Any) -> None:
    bootstrap = own_broker.bootstrap
    run = uuid.uuid4().hex[:6]
    a = start_worker(own_broker, "--pipeline", str(SUPPORT_TIERS), **env(fake_llm, "cheap", STRONG_COST * 1.5)).wait_ready()

    delays: list[float] = []

    def ledger_shows(total: float) -> None:
        """Wait until the worker's view (ledger entries only) holds ``total`` for tiny; note how long after the result."""
        since = time.monotonic()
        while sum(by_tenant.get("tiny", 0.0) for by_tenant in a.state("tenant-spend")["budget"].values()) < total * 0.999:
            assert time.monotonic() - since < 30, f"the worker's spend view never reached {total}"
            time.sleep(0.01)
        delays.append(time.monotonic() - since)

    # within budget: the rule's tier (strong for a question)
    r1, models = ask(bootstrap, fake_llm, {"id": f"t1-{run}", "tenant": "tiny", "text": QUESTION})
    assert r1.status == "ok" and models == ["strong-model"] and r1.usage.tiers == {"generation": "strong"}
    assert r1.usage.budget is None and r1.usage.cost_usd == pytest.approx(STRONG_COST)
    ledger_shows(STRONG_COST)
    r2, models = ask(bootstrap, fake_llm, {"id": f"t2-{run}", "tenant": "tiny", "text": QUESTION})
    assert r2.status == "ok" and models == ["strong-model"] and r2.usage.budget is None  # spent 1x, budget 1.5x
    ledger_shows(2 * STRONG_COST)
    r3, models = ask(bootstrap, fake_llm, {"id": f"t3-{run}", "tenant": "tiny", "text": QUESTION})
    assert r3.status == "ok" and models == ["cheap-model"]  # spent 2x: over budget, moved to the cheap tier
    assert r3.usage.tiers == {"generation": "cheap"} and r3.usage.budget == "cheap"
    assert r3.usage.cost_usd == pytest.approx(CHEAP_COST)
    ledger_shows(2 * STRONG_COST + CHEAP_COST)
    print("spend view: each request's ledger entry read by the worker "
          f"{', '.join(f'{d * 1000:.0f}' for d in delays)} ms after its result reached the client")
    o1, models = ask(bootstrap, fake_llm, {"id": f"o1-{run}", "tenant": "other", "text": QUESTION})
    assert o1.status == "ok" and models == ["strong-model"] and o1.usage.budget is None  # no budget for other tenants

    (gen,) = wait_for(lambda: spans(bootstrap, f"t3-{run}", "generation"), 30, "t3's generation span")
    assert (gen["conveyor.tier"], gen["conveyor.budget"], gen["gen_ai.request.model"]) == ("cheap", "cheap", "cheap-model")
    assert gen["conveyor.budget.spent_usd"] == pytest.approx(2 * STRONG_COST)
    assert metric(a, "conveyor_tier_decisions_total", pipeline="support", step="generation", tier="cheap", reason="budget") == 1
    assert metric(a, "conveyor_tier_decisions_total", pipeline="support", step="generation", tier="strong", reason="default") == 3
    a.stop()

    # a new worker, CONVEYOR_OVER_BUDGET=reject: its view starts empty and must read the whole ledger to know
    b = start_worker(own_broker, "--pipeline", str(SUPPORT_TIERS), **env(fake_llm, "reject", STRONG_COST * 1.5)).wait_ready()
    caught_up = re.search(r"spend view: (\d+) ledger entries read in (\S+)s", b.log.read_text(errors="replace"))
    print(f"new worker's spend view: {caught_up.group(1) if caught_up else '?'} ledger entries read at start-up in "
          f"{caught_up.group(2) if caught_up else '?'}s")
    r4, models = ask(bootstrap, fake_llm, {"id": f"t4-{run}", "tenant": "tiny", "text": QUESTION})
    assert models == [] and r4.status == "rejected" and r4.usage.budget == "rejected"
    assert r4.route == ["classification", "retrieval", "generation (over budget)"]
    assert r4.error is not None and "tenant 'tiny'" in r4.error and "CONVEYOR_BUDGETS" in r4.error
    assert f"${2 * STRONG_COST + CHEAP_COST:.6f} today" in r4.error  # every earlier request, read from the ledger
    o2, models = ask(bootstrap, fake_llm, {"id": f"o2-{run}", "tenant": "other", "text": QUESTION})
    assert o2.status == "ok" and models == ["strong-model"]
    (gen,) = wait_for(lambda: spans(bootstrap, f"t4-{run}", "generation"), 30, "t4's generation span")
    assert gen["status"] == "rejected" and gen["conveyor.budget"] == "rejected" and "tenant 'tiny'" in gen["error"]
    assert metric(b, "conveyor_budget_rejections_total", pipeline="support", tenant="tiny") == 1
    dead = [orjson.loads(v) for _, v in read_topic(bootstrap, "conveyor.dlq")]
    assert not [d for d in dead if d.get("request_id") == f"t4-{run}"]  # a refusal, not a failure
