"""The devteam pipeline in-process (``streams.testing``) against a scripted model server on loopback.

The loop is exercised for real: the reviewer rejects slugify's first version, duration's first
version has a bug that its own pytest test catches in the sandbox, the failing output goes back to
the coder, and the second versions are approved and pass. A second script never gets usable code
out of the coder, so that task runs into ``max_visits`` while the other task, in the same map,
finishes: visits are counted per branch. Offline, the pipeline refuses with the settings to set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import steps.devteam  # noqa: F401 - registers the devteam steps
from steps.generation import cost_usd
from streams.pipeline_file import load_pipeline
from streams.testing import Run, run_pipeline
from tests.devteam_llm import Rule, ScriptedLLM, deps_for

PIPELINE = Path(__file__).resolve().parents[2] / "streams" / "pipelines" / "devteam.yaml"
REQUEST = "Build two helpers: slugify(text) for URL slugs, and parse_duration(text) turning '1h30m' into seconds."
PRICES = {"devteam-script": (1.0, 2.0)}


def _plan(*tasks: tuple[str, str, str]) -> str:
    return json.dumps({"tasks": [{"title": t, "description": d, "module": m} for t, d, m in tasks]})


def _files(**files: str) -> str:
    return json.dumps({"files": {f"{name}.py": text for name, text in files.items()}, "notes": "done"})


SLUG_V1 = "def slugify(text: str) -> str:\n    return text.strip().lower().replace(' ', '-')\n"
SLUG_V2 = ("import re\n\n\ndef slugify(text: str) -> str:\n"
           "    return re.sub(r'[^a-z0-9]+', '-', text.lower()).strip('-')\n")
SLUG_TEST_V1 = "from slugify import slugify\n\n\ndef test_spaces():\n    assert slugify('Hello World') == 'hello-world'\n"
SLUG_TEST_V2 = SLUG_TEST_V1 + ("\n\ndef test_punctuation():\n"
                               "    assert slugify('Hello, World!') == 'hello-world'\n")
SLUG_COMMENT = ("Punctuation is kept: slugify('Hello, World!') gives 'hello,-world!'. Replace every run of "
                "non-alphanumeric characters with one '-', strip '-' at the ends, and test it.")
DURATION_V1 = ("import re\n\nUNITS = {'h': 3600, 'm': 3600, 's': 1}\n\n\ndef parse_duration(text: str) -> int:\n"
               "    return sum(int(n) * UNITS[u] for n, u in re.findall(r'(\\d+)([hms])', text))\n")
DURATION_V2 = DURATION_V1.replace("'m': 3600", "'m': 60")
DURATION_TEST = ("from duration import parse_duration\n\n\ndef test_hours():\n    assert parse_duration('2h') == 7200\n\n\n"
                 "def test_hours_and_minutes():\n    assert parse_duration('1h30m') == 5400\n")
FAILURE = "assert 111600 == 5400"  # what pytest prints for the bug in DURATION_V1

TWO_TASKS = [
    Rule("plan", "planner", _plan(("Slugify", "slugify(text) -> URL slug", "slugify"),
                                  ("Durations", "parse_duration('1h30m') -> 5400 seconds", "duration")),
         contains=("parse_duration",)),
    Rule("slugify-v1", "coder", _files(slugify=SLUG_V1, test_slugify=SLUG_TEST_V1),
         contains=("Module: slugify.py", "Version: 1")),
    Rule("slugify-v2", "coder", _files(slugify=SLUG_V2, test_slugify=SLUG_TEST_V2),
         contains=("Module: slugify.py", "Version: 2", "Replace every run of non-alphanumeric characters")),
    Rule("slugify-approved", "reviewer", json.dumps({"verdict": "approved", "comments": []}),
         contains=("Module: slugify.py", "re.sub", "test_punctuation")),
    Rule("slugify-changes", "reviewer", json.dumps({"verdict": "changes", "comments": [SLUG_COMMENT]}),
         contains=("Module: slugify.py",)),
    # the coder's second version of duration is the fix only when it was shown pytest's failure
    Rule("duration-v1", "coder", _files(duration=DURATION_V1, test_duration=DURATION_TEST),
         contains=("Module: duration.py", "Version: 1")),
    Rule("duration-v2", "coder",
         "Fixed the minutes factor.\n\nduration.py:\n```python\n" + DURATION_V2 + "```\n\n"
         "test_duration.py:\n```python\n" + DURATION_TEST + "```\n",
         contains=("Module: duration.py", "Version: 2", FAILURE, "FAILED test_duration.py::test_hours_and_minutes")),
    Rule("duration-approved", "reviewer", "APPROVED: reads well.", contains=("Module: duration.py",)),
]


@pytest.fixture(scope="module")
def scripted_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, ScriptedLLM]:
    with ScriptedLLM(TWO_TASKS) as server:
        deps = deps_for(server, tmp_path_factory.mktemp("index"), PRICES)
        run = run_pipeline(PIPELINE, [{"id": "feature-1", "text": REQUEST}], deps=deps)
    return run, server


def test_two_tasks_loop_through_review_and_tests_to_a_pass(scripted_run: tuple[Run, ScriptedLLM]) -> None:
    run, server = scripted_run
    (result,) = run.results
    assert (result.status, result.error, run.dead_letters, run.duplicates) == ("ok", None, [], [])
    out = result.output
    assert out["rounds"] == {"slugify": 2, "duration": 2}
    assert out["all_passed"] is True
    assert [t["module"] for t in out["tasks"]] == ["slugify", "duration"]
    slug, duration = out["reports"]
    assert (slug["status"], slug["review_rounds"], slug["test_runs"]) == ("passed", 2, 1)
    assert [r["verdict"] for r in slug["reviews"]] == ["changes", "approved"]
    assert slug["files"]["slugify.py"] == SLUG_V2
    assert (duration["status"], duration["review_rounds"], duration["test_runs"]) == ("passed", 2, 2)
    first, second = duration["tests"]
    assert (first["version"], first["passed"], second["version"], second["passed"]) == (1, False, 2, True)
    assert FAILURE in first["output"] and first["summary"].startswith("1 failed, 1 passed")
    assert second["summary"].startswith("2 passed")
    assert duration["files"]["duration.py"] == DURATION_V2
    assert result.answer is not None and result.answer.startswith("2 of 2 task(s) passed")


def test_the_server_saw_the_feedback_in_the_coders_prompts(scripted_run: tuple[Run, ScriptedLLM]) -> None:
    _, server = scripted_run
    assert [e.rule for e in server.exchanges if e.rule is None] == []
    assert len(server.by("planner")) == 1
    assert sorted(str(e.rule) for e in server.by("coder")) == ["duration-v1", "duration-v2", "slugify-v1", "slugify-v2"]
    assert sorted(str(e.rule) for e in server.by("reviewer")) == [
        "duration-approved", "duration-approved", "slugify-approved", "slugify-changes"]
    (fix,) = server.by("coder", "duration-v2")
    assert "The tests of version 1 failed" in fix.user and FAILURE in fix.user  # the tester's output, fed back
    assert DURATION_V1.splitlines()[2] in fix.user  # and the version it is about
    (redo,) = server.by("coder", "slugify-v2")
    assert SLUG_COMMENT in redo.user and "pytest output" not in redo.user  # the review, not a test run
    (approve,) = server.by("reviewer", "slugify-approved")
    assert SLUG_COMMENT in approve.user  # the reviewer is reminded of what it asked for


def test_route_usage_and_spans_follow_each_branch(scripted_run: tuple[Run, ScriptedLLM]) -> None:
    run, server = scripted_run
    (result,) = run.results
    slug_branch = ["code", "review", "code", "review", "test"]
    duration_branch = ["code", "review", "test", "code", "review", "test"]
    assert result.route == ["plan", *slug_branch, *duration_branch, "collect"]
    tin = sum(e.input_tokens for e in server.exchanges)
    tout = sum(e.output_tokens for e in server.exchanges)
    assert (result.usage.input_tokens, result.usage.output_tokens) == (tin, tout)
    assert result.usage.cost_usd == pytest.approx(cost_usd(PRICES, "devteam-script", tin, tout))
    llm = [s for s in run.spans if s["kind"] == "llm"]
    assert sorted(s["step"] for s in llm) == sorted(
        ["plan/planner.chat"] + ["code/coder.chat"] * 4 + ["review/reviewer.chat"] * 4)
    assert all(s["gen_ai.request.model"] == "devteam-script" and s["gen_ai.usage.input_tokens"] > 0 for s in llm)
    sandbox = [s for s in run.spans if s["step"] == "test/sandbox.pytest"]
    assert sorted((s["devteam.task"], s["devteam.version"], s["sandbox.passed"]) for s in sandbox) == [
        ("duration", 1, False), ("duration", 2, True), ("slugify", 2, True)]


GARBLED = [
    Rule("plan", "planner", "1. Greeting: greet(name) returns 'Hello, <name>!'\n2. Broken: anything",
         contains=("greet",)),
    Rule("greet-v1", "coder", _files(greeting="def greet(name):\n    return f'Hello, {name}!'\n",
                                     test_greeting="from greeting import greet\n\n\ndef test_greet():\n"
                                                   "    assert greet('Ada') == 'Hello, Ada!'\n"),
         contains=("Module: greeting.py",)),
    Rule("broken", "coder", "I would rather describe the code than write it.", contains=("Module: broken.py",)),
    Rule("greet-approved", "reviewer", '{"verdict": "approve"}', contains=("Module: greeting.py",)),
]


def test_a_task_that_never_converges_stops_at_max_visits_and_the_other_finishes(tmp_path: Path) -> None:
    spec = load_pipeline(PIPELINE)
    limit = spec.node("code").max_visits
    assert limit == 4
    with ScriptedLLM(GARBLED) as server:
        run = run_pipeline(spec, ["Two tasks: greet people, and a broken one"], deps=deps_for(server, tmp_path))
    (result,) = run.results
    assert (result.status, run.dead_letters) == ("ok", [])
    assert result.output["rounds"] == {"greeting": 1, "broken": limit}
    assert result.output["all_passed"] is False
    greet, broken = result.output["reports"]
    assert greet["status"] == "passed"
    assert broken["status"] == "unfinished" and "no approved, passing version after 4 rounds" in broken["reason"]
    assert all(not r["by_model"] and "held no files" in r["comments"][0] for r in broken["reviews"])
    assert len(server.by("coder", "broken")) == limit and server.by("reviewer") == server.by("reviewer", "greet-approved")
    assert result.route.count("code (limit)") == 1 and "unfinished" in result.route
    assert result.answer is not None and result.answer.startswith("1 of 2 task(s) passed")


def test_offline_the_pipeline_refuses_and_names_the_settings(tmp_path: Path) -> None:
    run = run_pipeline(PIPELINE, [{"id": "offline", "text": REQUEST}], deps=deps_for(None, tmp_path))
    (result,) = run.results
    assert result.status == "rejected" and run.dead_letters == []
    assert result.error is not None
    assert "CONVEYOR_LLM_PROVIDER=openai" in result.error and "CONVEYOR_LLM_BASE_URL" in result.error
    assert result.route == [] and result.usage.input_tokens == 0


def test_the_bundled_file_loads_in_a_fresh_interpreter_by_name() -> None:
    root = Path(__file__).resolve().parents[2]
    code = ("from streams.pipeline_file import load_pipeline\n"
            "spec = load_pipeline('devteam')\n"
            "print(spec.node('code').on_limit, spec.node('collect').join is not None, spec.result)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["unfinished", "True", "['tasks',", "'reports',", "'rounds',", "'all_passed']"]
