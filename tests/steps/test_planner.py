"""The planner step: offline (fake and real MiniLM embedders), LLM tool calling against a scripted server, a pipeline."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import steps.planner  # noqa: F401 - registers the planner step and the built-in tools
from steps.base import RetryableStepError, StepContext
from steps.deps import Deps, ResourceConfig
from steps.embedding import AsyncEmbedder
from steps.planner_offline import OfflinePlanner, delexicalise, split_clauses
from steps.registry import StepConfigError, resolve
from steps.toolbox import tool, tools
from streams.testing import run_pipeline
from tests.steps.scripted_llm import ScriptedLLM, answer, failure, tool_calls

HERE = Path(__file__).parent
LABELLED = HERE.parent / "data" / "planner_tools.jsonl"
BUILTIN = ["calculator", "current_time", "date_diff", "search_docs", "text_stats"]


@tool(cost_usd=0.004)
def lookup_order(order: int) -> dict[str, Any]:
    """Look up the shipping status of a customer order by its order number."""
    return {"order": order, "status": "shipped" if order % 2 else "packing"}


@tool
def reverse_text(text: str) -> str:
    """Reverse the letters of a text, spelling it backwards."""
    return text[::-1]


class KeywordEmbedder:
    """A deterministic stand-in for MiniLM: hashed bag of word stems, unit norm (shared words = similar)."""

    model_id = "keyword-hash"
    dim = 512

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"[a-z]+", text.lower()):
                if len(word) > 3:
                    out[row, int(hashlib.md5(word[:5].encode()).hexdigest(), 16) % self.dim] += 1.0
            norm = np.linalg.norm(out[row])
            out[row] /= norm if norm else 1.0
        return out


def context(model: str | None = None) -> StepContext:
    return StepContext(request_id="r-1", model=model)


async def planned(config: dict[str, Any], deps: Deps, text: str, ctx: StepContext | None = None) -> Any:
    runner = resolve("planner").build(config)
    await runner.warm_up(deps)
    return await runner.run({"text": text}, ctx or context())


@pytest.fixture
def keyword_deps(tmp_path: Path) -> Deps:
    return Deps(ResourceConfig(index_dir=tmp_path), embedder=AsyncEmbedder(KeywordEmbedder()))


@pytest.fixture(scope="module")
def minilm_deps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deps]:
    deps = Deps(ResourceConfig(index_dir=tmp_path_factory.mktemp("planner-index")))
    yield deps
    deps.embedder.close()


@pytest.fixture(scope="module")
def llm() -> Iterator[ScriptedLLM]:
    server = ScriptedLLM().start()
    yield server
    server.stop()


def llm_deps(llm: ScriptedLLM, tmp_path: Path, model: str, prices: dict[str, tuple[float, float]] | None = None) -> Deps:
    config = ResourceConfig(index_dir=tmp_path, llm_provider="openai", llm_base_url=llm.base_url, llm_model=model,
                            prices=prices or {})
    return Deps(config, embedder=AsyncEmbedder(KeywordEmbedder()))


# -- configuration -------------------------------------------------------------------------------------


def test_unknown_tool_fails_at_load_naming_it_and_the_registered_ones() -> None:
    with pytest.raises(StepConfigError) as info:
        resolve("planner").build({"tools": ["calculator", "weather"]})
    message = str(info.value)
    assert "'weather' is not a known tool" in message and "'calculator'" in message and "'text_stats'" in message
    with pytest.raises(StepConfigError, match="max_iterations must be at least 1"):
        resolve("planner").build({"max_iterations": 0})
    with pytest.raises(StepConfigError, match="budget_usd must be >= 0"):
        resolve("planner").build({"budget_usd": -0.1})
    with pytest.raises(StepConfigError, match="unknown config key 'tool'"):
        resolve("planner").build({"tool": ["calculator"]})


def test_default_tools_are_every_registered_tool() -> None:
    runner = resolve("planner").build({})
    assert set(BUILTIN) | {"lookup_order", "reverse_text"} <= set(runner.instance.tools)


# -- offline, on a keyword embedder: the planning logic itself --------------------------------------------


def test_clauses_split_at_new_questions_not_inside_dates_or_quotes() -> None:
    assert split_clauses("What is 12 * 7 and what time is it in London? Then count the words in 'this and that'") == [
        ["What is 12 * 7", "what time is it in London"], ["count the words in 'this and that'"]]
    assert split_clauses("How many days between 2024-01-01 and 2024-03-01?") == [
        ["How many days between 2024-01-01 and 2024-03-01"]]
    assert delexicalise("count 'a b' on 2024-01-01: 7 x (6 + 1)") == "count the text on a date: an arithmetic expression"


def test_offline_calls_the_matching_tools_in_the_order_asked(keyword_deps: Deps) -> None:
    config = {"tools": ["lookup_order", "reverse_text", "text_stats"], "min_score": 0.3}
    ctx = context()
    out = asyncio.run(planned(config, keyword_deps, 'Spell "stressed" backwards, then look up the status of order 1042',
                              ctx))
    assert [(c.name, c.arguments, c.iteration) for c in out.tool_calls] == [
        ("reverse_text", {"text": "stressed"}, 1), ("lookup_order", {"order": 1042}, 2)]
    assert out.tool_calls[0].result == "desserts" and out.tool_calls[1].result == {"order": 1042, "status": "packing"}
    assert out.stopped == "done" and out.planner == "offline" and out.unmatched == []
    assert "desserts" in out.answer and "status packing" in out.answer
    assert [(s.name, s.kind) for s in ctx.spans] == [("reverse_text", "tool"), ("lookup_order", "tool")]
    assert out.spent_usd == 0.004 and [u.model for u in ctx.usage] == ["tool:lookup_order"]


def test_offline_skips_a_tool_it_cannot_fill_and_says_what_is_left(keyword_deps: Deps) -> None:
    config = {"tools": ["lookup_order", "reverse_text"], "min_score": 0.3}
    out = asyncio.run(planned(config, keyword_deps, "look up the status of my order; also bake a cake"))
    assert out.tool_calls == [] and out.stopped == "no_match"
    assert out.unmatched == ["'look up the status of my order': lookup_order needs 'order' (int) and the request gives none",
                             "'bake a cake': no tool fits it"]
    assert "No tool fits this request" in out.answer and "bake a cake" in out.answer


def test_offline_stops_at_max_iterations(keyword_deps: Deps) -> None:
    config = {"tools": ["lookup_order"], "min_score": 0.3, "max_iterations": 2}
    out = asyncio.run(planned(config, keyword_deps, "status of order 1; status of order 2; status of order 3"))
    assert [c.arguments["order"] for c in out.tool_calls] == [1, 2] and out.stopped == "max_iterations"
    assert "max_iterations=2" in out.answer and "'status of order 3'" in out.answer


def test_offline_stops_before_a_paid_tool_would_pass_the_budget(keyword_deps: Deps) -> None:
    config = {"tools": ["lookup_order"], "min_score": 0.3, "budget_usd": 0.01}
    ctx = context()
    out = asyncio.run(planned(config, keyword_deps, "status of order 1; status of order 2; status of order 3", ctx))
    assert len(out.tool_calls) == 2 and out.stopped == "budget"  # 2 x 0.004 spent; a third would make 0.012
    assert ctx.cost_so_far() == pytest.approx(0.008) and ctx.cost_so_far() <= 0.01
    assert "budget of $0.01" in out.answer


# -- offline, on the real MiniLM embedder -----------------------------------------------------------------


def test_tool_selection_accuracy_on_the_labelled_set(minilm_deps: Deps) -> None:
    rows = [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines()]
    planner = OfflinePlanner({n: tools()[n] for n in BUILTIN}, minilm_deps.embedder, min_score=0.22)

    async def choose() -> list[list[str]]:
        return [[s.tool for s in await planner.select(r["request"]) if s.tool] for r in rows]

    chosen = asyncio.run(choose())
    score: dict[str, list[bool]] = {}
    for row, got in zip(rows, chosen, strict=True):
        score.setdefault(row["split"], []).append(got == row["tools"])
    accuracy = {split: sum(hits) / len(hits) for split, hits in score.items()}
    print(f"offline tool selection, exact ordered list per request: {accuracy} "
          f"({ {s: f'{sum(h)}/{len(h)}' for s, h in score.items()} })")
    assert len(score["dev"]) == 40 and len(score["heldout"]) == 20
    assert accuracy["dev"] >= 0.9 and accuracy["heldout"] >= 0.85


def test_offline_end_to_end_with_real_tools(minilm_deps: Deps) -> None:
    config = {"tools": ["calculator", "date_diff", "text_stats", "current_time"]}
    ctx = context()
    text = 'What is 12 * 7 and how many days between 2024-01-01 and 2024-03-01? Then count the words in "to be or not to be"'
    out = asyncio.run(planned(config, minilm_deps, text, ctx))
    assert [c.name for c in out.tool_calls] == ["calculator", "date_diff", "text_stats"]
    assert out.tool_calls[0].result == 84 and out.tool_calls[1].result["days"] == 60
    assert out.tool_calls[2].result["words"] == 6
    assert "84" in out.answer and "60 days after 2024-01-01" in out.answer and "words 6" in out.answer
    assert out.stopped == "done" and len(ctx.spans) == 3


def test_search_docs_reads_the_index_through_injected_deps(warm: dict[str, Any]) -> None:
    out = asyncio.run(planned({"tools": ["search_docs", "calculator"], "mode": "offline"}, warm["deps"],
                              "How do I decode a JSON document into a Python object?"))
    assert [c.name for c in out.tool_calls] == ["search_docs"]
    hits = out.tool_calls[0].result
    assert hits and any("json" in h["source"] for h in hits) and "json" in out.answer.lower()


# -- LLM mode, against a scripted OpenAI-compatible server ------------------------------------------------


def test_llm_calls_tools_in_order_and_feeds_results_back(llm: ScriptedLLM, tmp_path: Path) -> None:
    llm.script("order", [tool_calls(("calculator", {"expression": "12*7"}), ("text_stats", {"text": "a b c"})),
                         answer("12*7 is 84 and the text has 3 words.")])
    ctx = context()
    out = asyncio.run(planned({"tools": ["calculator", "text_stats"]}, llm_deps(llm, tmp_path, "order"),
                              "What is 12*7, and how many words in 'a b c'?", ctx))
    assert out.planner == "llm" and out.stopped == "done" and out.answer == "12*7 is 84 and the text has 3 words."
    assert [(c.name, c.result, c.iteration) for c in out.tool_calls] == [
        ("calculator", 84, 1), ("text_stats", {"words": 3, "characters": 5, "sentences": 1}, 1)]
    first, second = llm.calls("order")
    assert first["model"] == "order" and first["messages"][0]["role"] == "system"
    assert first["messages"][1] == {"role": "user", "content": "What is 12*7, and how many words in 'a b c'?"}
    assert sorted(t["function"]["name"] for t in first["tools"]) == ["calculator", "text_stats"]
    assert first["tools"][0]["function"]["parameters"]["required"] == ["expression"]
    assistant, result_1, result_2 = second["messages"][2:]
    assert [c["function"]["name"] for c in assistant["tool_calls"]] == ["calculator", "text_stats"]
    assert result_1 == {"role": "tool", "tool_call_id": "call_0", "content": "84"}
    assert result_2["tool_call_id"] == "call_1" and json.loads(result_2["content"])["words"] == 3
    assert [(s.name, s.kind, s.status) for s in ctx.spans] == [
        ("chat", "llm", "ok"), ("calculator", "tool", "ok"), ("text_stats", "tool", "ok"), ("chat", "llm", "ok")]
    assert ctx.spans[0].attributes["tool_calls_requested"] == 2 and ctx.spans[0].attributes["call.input_tokens"] == 100
    assert len(ctx.usage) == 2  # one per model call


def test_llm_bad_arguments_go_back_to_the_model(llm: ScriptedLLM, tmp_path: Path) -> None:
    llm.script("fixes", [tool_calls(("calculator", {"expr": "1+1"}), ("calculator", "{not json"), ("weather", {})),
                         tool_calls(("calculator", {"expression": "1+1"})), answer("2")])
    ctx = context()
    out = asyncio.run(planned({"tools": ["calculator"]}, llm_deps(llm, tmp_path, "fixes"), "1+1?", ctx))
    assert out.stopped == "done" and out.answer == "2"
    assert [bool(c.error) for c in out.tool_calls] == [True, True, True, False] and out.tool_calls[3].result == 2
    replies = [m for m in llm.calls("fixes")[1]["messages"] if m["role"] == "tool"]
    errors = [json.loads(m["content"])["error"] for m in replies]
    assert "bad arguments" in errors[0] and "it takes: expression" in errors[0]
    assert "not a JSON object" in errors[1] and "no tool named 'weather'" in errors[2]
    assert [s.status for s in ctx.spans if s.kind == "tool"] == ["error", "error", "error", "ok"]


def test_llm_stops_at_max_iterations(llm: ScriptedLLM, tmp_path: Path) -> None:
    llm.script("forever", [tool_calls(("calculator", {"expression": "2+2"}))])
    ctx = context()
    out = asyncio.run(planned({"tools": ["calculator"], "max_iterations": 3}, llm_deps(llm, tmp_path, "forever"),
                              "keep going", ctx))
    assert len(llm.calls("forever")) == 3 and out.stopped == "max_iterations"
    assert [c.iteration for c in out.tool_calls] == [1, 2, 3]
    assert "max_iterations=3 model calls" in out.answer and "calculator (2+2): 4" in out.answer
    assert [s.kind for s in ctx.spans] == ["llm", "tool"] * 3


def test_llm_stops_at_the_budget_checked_before_each_model_call(llm: ScriptedLLM, tmp_path: Path) -> None:
    llm.script("pricey", [tool_calls(("calculator", {"expression": "2+2"}))])
    # 100 + 100 tokens at $1000 per million each way: $0.20 a call
    deps = llm_deps(llm, tmp_path, "pricey", prices={"pricey": (1000.0, 1000.0)})
    ctx = context()
    out = asyncio.run(planned({"tools": ["calculator"], "max_iterations": 10, "budget_usd": 0.5}, deps, "go", ctx))
    assert out.stopped == "budget" and len(llm.calls("pricey")) == 3  # 0 -> 0.2 -> 0.4 (< 0.5) -> 0.6: stop
    assert out.spent_usd == pytest.approx(0.6) and out.spent_usd <= 0.5 + 0.2  # at most one call's price over
    assert [u.cost_usd for u in ctx.usage] == pytest.approx([0.2, 0.2, 0.2])
    assert "budget of $0.5" in out.answer


def test_llm_paid_tools_never_pass_the_budget(llm: ScriptedLLM, tmp_path: Path) -> None:
    llm.script("orders", [tool_calls(("lookup_order", {"order": 1}), ("lookup_order", {"order": 2}),
                                     ("lookup_order", {"order": 3}))])
    ctx = context()
    out = asyncio.run(planned({"tools": ["lookup_order"], "budget_usd": 0.01}, llm_deps(llm, tmp_path, "orders"),
                              "orders 1, 2, 3", ctx))
    assert [c.arguments["order"] for c in out.tool_calls] == [1, 2] and out.stopped == "budget"
    assert ctx.cost_so_far() == pytest.approx(0.008)


def test_llm_uses_the_tier_model_and_a_failed_call_is_a_span_and_retryable(llm: ScriptedLLM, tmp_path: Path) -> None:
    llm.script("strong-tier", [answer("fine")])
    llm.script("down", [failure(503)])
    out = asyncio.run(planned({"tools": ["calculator"]}, llm_deps(llm, tmp_path, "default-model"), "hi",
                              context(model="strong-tier")))
    assert out.answer == "fine" and out.tool_calls == [] and llm.calls("strong-tier")[0]["model"] == "strong-tier"
    ctx = context()
    with pytest.raises(RetryableStepError, match="503"):
        asyncio.run(planned({"tools": ["calculator"]}, llm_deps(llm, tmp_path, "down"), "hi", ctx))
    assert [(s.kind, s.status) for s in ctx.spans] == [("llm", "error")] and "503" in (ctx.spans[0].error or "")


def test_mode_llm_without_a_model_says_which_settings_to_set(keyword_deps: Deps) -> None:
    with pytest.raises(Exception, match="CONVEYOR_LLM_PROVIDER=openai"):
        asyncio.run(planned({"tools": ["calculator"], "mode": "llm"}, keyword_deps, "2+2"))


# -- in a pipeline ---------------------------------------------------------------------------------------


def test_planner_in_a_pipeline(minilm_deps: Deps) -> None:
    run = run_pipeline(HERE / "flows" / "planner.yaml", [{"id": "p-1", "text": "What is 15% of 80? Also what is 2^10?"},
                                                         {"id": "p-2", "text": "hello there"}], deps=minilm_deps)
    done, nothing = run.results
    assert done.status == "ok" and done.output["stopped"] == "done" and done.output["planner"] == "offline"
    assert [c["result"] for c in done.output["tool_calls"]] == [12, 1024] and "1024" in (done.answer or "")
    assert nothing.status == "ok" and nothing.output["stopped"] == "no_match" and nothing.output["tool_calls"] == []
    tool_spans = [s for s in run.spans if s["request_id"] == "p-1" and s["kind"] == "tool"]
    assert [(s["step"], s["parent"], s["status"]) for s in tool_spans] == [
        ("plan/calculator", "plan", "ok"), ("plan/calculator", "plan", "ok")]
