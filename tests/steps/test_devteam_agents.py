"""The devteam's steps one at a time, against the scripted model server on loopback: model calls, usage, refusals."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

import steps.devteam  # noqa: F401 - registers the devteam steps
from steps.base import FatalStepError, RejectedStepError, StepContext
from steps.registry import StepConfigError, StepRunner, resolve
from tests.devteam_llm import Rule, ScriptedLLM, deps_for

TASK = {"title": "Greeting", "description": "greet(name)", "module": "greeting"}
MODULE = "def greet(name):\n    return f'Hello, {name}!'\n"
TESTS = "from greeting import greet\n\n\ndef test_greet():\n    assert greet('Ada') == 'Hello, Ada!'\n"
RULES = [
    Rule("plan", "planner", '{"tasks": [{"title": "Greeting", "module": "greeting"}]}', contains=("greet",)),
    Rule("no-plan", "planner", "Sorry, I only plan software.", contains=("weather",)),
    Rule("module-only", "coder", "greeting.py:\n```python\n" + MODULE + "```", contains=("Version: 2",)),
    Rule("code", "coder", json.dumps({"files": {"greeting.py": MODULE, "test_greeting.py": TESTS}}),
         contains=("Version: 1",)),
    Rule("mumble", "reviewer", "Interesting approach overall.", contains=("mumble",)),
    Rule("review", "reviewer", '{"verdict": "approved"}'),
]
PRICES = {"strong-x": (3.0, 15.0), "devteam-script": (1.0, 2.0)}


@pytest.fixture(scope="module")
def server() -> Any:
    with ScriptedLLM(RULES) as running:
        yield running


def _run(name: str, data: dict[str, Any], deps: Any, ctx: StepContext, config: dict[str, Any] | None = None) -> Any:
    runner: StepRunner = resolve(name).build(config or {})

    async def go() -> Any:
        await runner.warm_up(deps)
        return await runner.run(data, ctx)

    return asyncio.run(go())


@pytest.mark.parametrize(("name", "data"), [
    ("devteam-plan", {"text": "greet people"}),
    ("devteam-code", {"item": TASK, "index": 0}),
    ("devteam-review", {"item": TASK, "version": 1, "files": {"greeting.py": MODULE}}),
])
def test_offline_every_agent_refuses_naming_the_settings(name: str, data: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(RejectedStepError) as refused:
        _run(name, data, deps_for(None, tmp_path), StepContext(request_id="r"))
    assert "CONVEYOR_LLM_PROVIDER=openai" in str(refused.value) and "CONVEYOR_LLM_BASE_URL" in str(refused.value)


def test_the_planner_uses_the_tiers_model_and_books_the_call(server: ScriptedLLM, tmp_path: Path) -> None:
    ctx = StepContext(request_id="r", model="strong-x", tier="strong")
    out = _run("devteam-plan", {"text": "greet people"}, deps_for(server, tmp_path, PRICES), ctx)
    assert [t.module for t in out.tasks] == ["greeting"]
    exchange = server.exchanges[-1]
    assert (exchange.rule, exchange.model) == ("plan", "strong-x")
    (usage,) = ctx.usage
    assert (usage.model, usage.input_tokens, usage.output_tokens) == ("strong-x", exchange.input_tokens,
                                                                      exchange.output_tokens)
    assert usage.cost_usd == pytest.approx((exchange.input_tokens * 3.0 + exchange.output_tokens * 15.0) / 1e6)
    (span,) = ctx.spans
    assert (span.name, span.kind, span.status) == ("planner.chat", "llm", "ok")
    assert span.attributes["gen_ai.request.model"] == "strong-x"
    assert span.attributes["gen_ai.usage.output_tokens"] == exchange.output_tokens


def test_a_plan_with_no_task_is_refused(server: ScriptedLLM, tmp_path: Path) -> None:
    with pytest.raises(RejectedStepError, match="found no task"):
        _run("devteam-plan", {"text": "what is the weather"}, deps_for(server, tmp_path), StepContext(request_id="r"))


def test_the_coder_writes_version_one_then_keeps_files_a_fix_leaves_out(server: ScriptedLLM, tmp_path: Path) -> None:
    deps = deps_for(server, tmp_path)
    first = _run("devteam-code", {"item": TASK, "index": 0}, deps, StepContext(request_id="r"))
    assert (first.version, sorted(first.files), first.problems) == (1, ["greeting.py", "test_greeting.py"], [])
    ctx = StepContext(request_id="r")
    reviews = [{"version": 1, "verdict": "changes", "comments": ["say hello louder"]}]
    second = _run("devteam-code", {"item": TASK, "index": 0, "version": 1, "files": first.files, "reviews": reviews},
                  deps, ctx)
    assert second.version == 2 and second.files == first.files  # the reply gave greeting.py only; the tests stay
    exchange = server.exchanges[-1]
    assert exchange.rule == "module-only" and "say hello louder" in exchange.user and TESTS.splitlines()[0] in exchange.user
    assert ctx.spans[0].attributes["devteam.version"] == 2


def test_the_reviewer_sends_back_a_version_with_no_files_without_asking(server: ScriptedLLM, tmp_path: Path) -> None:
    before = len(server.exchanges)
    out = _run("devteam-review", {"item": TASK, "version": 3, "problems": ["the reply held no files"]},
               deps_for(server, tmp_path), StepContext(request_id="r"))
    assert out.route == "changes" and out.reviews[-1].comments == ["the reply held no files"]
    assert not out.reviews[-1].by_model and len(server.exchanges) == before


def test_a_review_without_a_verdict_is_not_an_approval(server: ScriptedLLM, tmp_path: Path) -> None:
    files = {"greeting.py": MODULE + "# mumble\n"}
    out = _run("devteam-review", {"item": TASK, "version": 1, "files": files}, deps_for(server, tmp_path),
               StepContext(request_id="r"))
    assert out.route == "changes" and out.reviews[-1].comments == ["Interesting approach overall."]
    approved = _run("devteam-review", {"item": TASK, "version": 1, "files": {"greeting.py": MODULE}},
                    deps_for(server, tmp_path), StepContext(request_id="r"))
    assert approved.route == "approved"


def test_a_model_error_is_raised_and_recorded_as_a_failed_llm_span(tmp_path: Path) -> None:
    with ScriptedLLM([]) as silent:
        ctx = StepContext(request_id="r")
        with pytest.raises(FatalStepError, match="HTTP 400.*no_scripted_reply"):
            _run("devteam-plan", {"text": "greet"}, deps_for(silent, tmp_path), ctx)
    (span,) = ctx.spans
    assert (span.kind, span.status) == ("llm", "error") and "FatalStepError" in (span.error or "")
    assert ctx.usage == []


def test_the_tester_runs_pytest_and_reports(tmp_path: Path) -> None:
    deps = deps_for(None, tmp_path)  # the tester needs no model
    ctx = StepContext(request_id="r")
    base = {"item": TASK, "index": 1, "version": 2}
    good = _run("devteam-test", {**base, "files": {"greeting.py": MODULE, "test_greeting.py": TESTS}}, deps, ctx)
    assert good.route == "passed" and good.report.status == "passed" and good.test_runs[-1].summary.startswith("1 passed")
    assert ctx.spans[0].name == "sandbox.pytest" and ctx.spans[0].attributes["sandbox.passed"] is True
    broken = {"greeting.py": MODULE.replace("Hello", "Bye"), "test_greeting.py": TESTS}
    bad = _run("devteam-test", {**base, "files": broken}, deps, StepContext(request_id="r"), {"time_s": 10})
    assert bad.route == "failed" and "assert 'Bye, Ada!' == 'Hello, Ada!'" in bad.test_runs[-1].output
    none = _run("devteam-test", {**base, "files": {"greeting.py": MODULE}}, deps, StepContext(request_id="r"))
    assert none.route == "failed" and not none.test_runs[-1].ran and "test_greeting.py" in none.test_runs[-1].outcome


def test_the_testers_limits_are_node_config() -> None:
    limits = resolve("devteam-test").build({"time_s": 5, "memory_mb": 256}).instance.limits
    assert (limits.time_s, limits.memory_mb, limits.cpu_s) == (5, 256, 10)
    with pytest.raises(StepConfigError, match="unknown config key 'memory'"):
        resolve("devteam-test").build({"memory": 256})
