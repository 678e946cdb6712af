"""The planner on the real broker: a worker process whose model never stops asking for tools is held by
``max_iterations`` and by ``budget_usd``, and every tool and model call is a span on ``conveyor.traces``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.conftest import exchange, read_topic, wait_for
from tests.steps.scripted_llm import ScriptedLLM, tool_calls

pytestmark = pytest.mark.integration
FLOWS = Path(__file__).resolve().parent / "flows" / "planner"
ROOT = Path(__file__).resolve().parents[2]
MODEL = "looping-model"


@pytest.fixture
def looping_llm() -> Iterator[ScriptedLLM]:
    server = ScriptedLLM().start()
    # every turn: one calculator call, 100 + 100 tokens ($0.20 a call at the prices the worker is given)
    server.script(MODEL, [tool_calls(("calculator", {"expression": "6*7"}))])
    yield server
    server.stop()


def test_planner_stops_at_max_iterations_and_at_budget_with_spans(
    own_broker: Any, start_worker: Any, looping_llm: ScriptedLLM
) -> None:
    start_worker(own_broker, "--pipeline", "planner-turns.yaml", "--pipeline", "planner-budget.yaml", cwd=FLOWS,
                 PYTHONPATH=str(ROOT), CONVEYOR_LLM_PROVIDER="openai", CONVEYOR_LLM_BASE_URL=looping_llm.base_url,
                 CONVEYOR_LLM_MODEL=MODEL, CONVEYOR_PRICES=orjson.dumps({MODEL: [1000.0, 1000.0]}).decode()).wait_ready()
    turns, budget = f"turns-{uuid.uuid4().hex[:8]}", f"budget-{uuid.uuid4().hex[:8]}"
    results = exchange(own_broker.bootstrap, [{"id": turns, "text": "what is 6*7?", "pipeline": "planner-turns"},
                                              {"id": budget, "text": "what is 6*7?", "pipeline": "planner-budget"}])

    held = results[turns]
    assert held.status == "ok", held
    assert held.output["stopped"] == "max_iterations" and held.output["planner"] == "llm"
    assert [(c["name"], c["result"], c["iteration"]) for c in held.output["tool_calls"]] == [
        ("calculator", 42, 1), ("calculator", 42, 2)]
    assert "max_iterations=2" in (held.answer or "")

    spent = results[budget]
    assert spent.status == "ok", spent
    # $0.20 a call: calls start at $0, $0.20 and $0.40 spent; at $0.60 the next one is refused
    assert spent.output["stopped"] == "budget" and len(spent.output["tool_calls"]) == 3
    assert spent.output["spent_usd"] == pytest.approx(0.6) and spent.usage.cost_usd == pytest.approx(0.6)
    assert spent.usage.input_tokens == 300
    assert len(looping_llm.calls(MODEL)) == 2 + 3

    def spans() -> dict[str, list[dict[str, Any]]]:
        found: dict[str, list[dict[str, Any]]] = {turns: [], budget: []}
        for _, value in read_topic(own_broker.bootstrap, "conveyor.traces"):
            span = orjson.loads(value)
            if span["request_id"] in found:
                found[span["request_id"]].append(span)
        # the step's own span, plus one model span and one tool span per turn
        return found if len(found[turns]) >= 1 + 2 * 2 and len(found[budget]) >= 1 + 2 * 3 else {}

    traced = wait_for(spans, 30, "the planner's spans on conveyor.traces")
    for rid, calls in ((turns, 2), (budget, 3)):
        by_kind = sorted((s["step"], s["kind"], s["status"]) for s in traced[rid] if s["parent"] == "plan")
        assert by_kind == sorted([("plan/chat", "llm", "ok")] * calls + [("plan/calculator", "tool", "ok")] * calls)
        tool_span = next(s for s in traced[rid] if s["kind"] == "tool")
        assert tool_span["gen_ai.tool.name"] == "calculator" and tool_span["arguments"] == "expression: str(3)"
        step_span = next(s for s in traced[rid] if s["step"] == "plan")
        assert step_span["gen_ai.request.model"] == MODEL and step_span["gen_ai.usage.input_tokens"] == 100 * calls
    print(f"max_iterations: {len(held.output['tool_calls'])} turns; budget: ${spent.output['spent_usd']} spent of $0.5 "
          f"in {len(spent.output['tool_calls'])} turns; spans per request: { {k: len(v) for k, v in traced.items()} }")
