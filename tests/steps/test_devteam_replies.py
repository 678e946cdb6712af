"""Reading the agents' replies: strict JSON, JSON in prose or fences, fenced code blocks, lists, and refusals of bad names."""

from __future__ import annotations

import pytest

from steps.devteam.models import ReviewRecord, Task, TestRecord
from steps.devteam.prompts import coder_messages, feedback
from steps.devteam.replies import json_object, module_name, parse_files, parse_tasks, parse_verdict

TASK = Task(title="Slugify", description="slugify(text)", module="slugify")


def test_json_is_found_whole_fenced_or_inside_prose() -> None:
    assert json_object('{"a": 1}') == {"a": 1}
    assert json_object('Here you go:\n```json\n{"a": [1, 2]}\n```\nThanks') == {"a": [1, 2]}
    assert json_object('Sure! {"verdict": "approved"} Hope that helps.') == {"verdict": "approved"}
    assert json_object("no json at all") is None


def test_tasks_from_json_with_module_names_made_safe_and_unique() -> None:
    reply = ('```json\n{"tasks": [{"title": "Parse JSON lines", "module": "json"}, '
             '{"title": "Second", "module": "json"}, {"title": "3rd: digits", "description": "d"}, {"x": 1}]}\n```')
    tasks = parse_tasks(reply, max_tasks=5)
    assert [t.module for t in tasks] == ["json_impl", "json_impl_2", "m_3rd_digits"]
    assert tasks[2].description == "d"


def test_tasks_from_a_numbered_list_and_capped() -> None:
    reply = "Plan:\n1. Slugify: turn text into a slug\n2) Durations: parse '1h30m'\n- Third: more\n"
    tasks = parse_tasks(reply, max_tasks=2)
    assert [(t.title, t.module, t.description) for t in tasks] == [
        ("Slugify", "slugify", "turn text into a slug"), ("Durations", "durations", "parse '1h30m'")]
    assert parse_tasks("I cannot help with that.", max_tasks=3) == []


@pytest.mark.parametrize("title", ["for", "Test helpers", "os", "!!!"])
def test_module_names_never_shadow_or_break_imports(title: str) -> None:
    name = module_name(title)
    assert name.isidentifier() and not name.startswith("test") and name not in ("for", "os")


def test_files_from_json_as_a_mapping_or_a_list() -> None:
    mapping = parse_files('{"files": {"slugify.py": "x = 1", "test_slugify.py": "def test(): pass\\n"}, "notes": "n"}',
                          TASK)
    assert mapping.files == {"slugify.py": "x = 1\n", "test_slugify.py": "def test(): pass\n"}
    assert (mapping.notes, mapping.problems) == ("n", [])
    listed = parse_files('{"files": [{"path": "slugify.py", "content": "y = 2\\n"}, {"name": "a.py", "code": "z\\n"}]}',
                         TASK)
    assert listed.files == {"slugify.py": "y = 2\n", "a.py": "z\n"}


def test_files_from_fenced_blocks_named_in_the_fence_a_comment_or_the_line_above() -> None:
    reply = ("Here is the module.\n\n**slugify.py**\n```python\ndef slugify(t):\n    return t\n```\n"
             "```python title=helpers.py\nH = 1\n```\n"
             "```python\n# file: extra.py\nE = 2\n```\n"
             "And the tests:\n```python\nfrom slugify import slugify\n\ndef test_it():\n    assert slugify('a') == 'a'\n```\n")
    parsed = parse_files(reply, TASK)
    assert sorted(parsed.files) == ["extra.py", "helpers.py", "slugify.py", "test_slugify.py"]
    assert parsed.files["extra.py"] == "E = 2\n" and parsed.problems == []
    assert parsed.notes.startswith("Here is the module.")


def test_unsafe_names_and_empty_replies_become_problems_not_files() -> None:
    parsed = parse_files('{"files": {"../../etc/cron.d/x": "boom", "ok.py": "pass"}}', TASK)
    assert list(parsed.files) == ["ok.py"]
    assert len(parsed.problems) == 1 and "../../etc/cron.d/x" in parsed.problems[0]
    empty = parse_files("I'd rather not.", TASK)
    assert empty.files == {} and "held no files" in empty.problems[0]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('{"verdict": "approved", "comments": []}', ("approved", [])),
        ('```json\n{"verdict": "changes", "comments": "add a test"}\n```', ("changes", ["add a test"])),
        ('{"decision": "request changes", "comments": ["a", "b"]}', ("changes", ["a", "b"])),
        ("LGTM, ship it.", ("approved", [])),
        ("CHANGES requested:\n- handle empty input\n- test unicode", ("changes", ["handle empty input", "test unicode"])),
    ],
)
def test_verdicts(reply: str, expected: tuple[str, list[str]]) -> None:
    assert parse_verdict(reply) == expected


def test_no_verdict_when_the_reply_says_none_or_both() -> None:
    assert parse_verdict("Hmm, interesting code.") is None
    assert parse_verdict("Not approved: changes needed.") is None


def test_feedback_is_about_the_previous_version_the_test_run_first() -> None:
    reviews = [ReviewRecord(version=1, verdict="changes", comments=["handle ''"]),
               ReviewRecord(version=2, verdict="approved")]
    runs = [TestRecord(version=2, passed=False, outcome="exit code 1", summary="1 failed", output="assert 1 == 2")]
    assert feedback(1, reviews, runs) == "The reviewer asked for changes to version 1:\n- handle ''"
    said = feedback(2, reviews, runs)
    assert said.startswith("The tests of version 2 failed (exit code 1; 1 failed)") and "assert 1 == 2" in said
    assert feedback(3, reviews, runs) == ""
    user = coder_messages(TASK, 0, 3, {"slugify.py": "x = 1\n"}, said)[1]["content"]
    assert "Version: 3" in user and "Your previous version (2)" in user and "assert 1 == 2" in user
