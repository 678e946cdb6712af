"""Reading the agents' replies: JSON when the model followed the instructions, fenced code blocks when it did not.

Models wrap JSON in fences, add prose around it, name files in a heading instead of a field, or
answer with a numbered list. Each parser tries the strict form first and then the common loose
ones, and says what it could not use (a file name that would leave the sandbox, a block with no
name) instead of failing: the reviewer and the coder see those problems on the next round.
"""

from __future__ import annotations

import json
import keyword
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Literal

from steps.devteam.models import Task
from steps.devteam.sandbox import UnsafeFileError, safe_name

__all__ = ["ParsedFiles", "json_object", "module_name", "parse_files", "parse_tasks", "parse_verdict"]

_FENCE = re.compile(r"```[ \t]*([^\n`]*)\n(.*?)```", re.S)
_FILE_NAME = re.compile(r"([A-Za-z0-9_][A-Za-z0-9_./-]*\.(?:py|txt|json|csv|md|cfg|toml|ini))\b")
_LIST_ITEM = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+(.+?)\s*$")
_VERDICTS: dict[str, Literal["approved", "changes"]] = {
    "approved": "approved", "approve": "approved", "accept": "approved", "accepted": "approved", "lgtm": "approved",
    "changes": "changes", "request_changes": "changes", "changes_requested": "changes", "reject": "changes",
    "rejected": "changes", "needs_changes": "changes",
}


def json_object(text: str) -> Any | None:
    """The first JSON value in ``text``: the whole text, a fenced block, or from the first ``{``/``[`` on."""
    candidates = [text.strip()]
    candidates += [body.strip() for info, body in _FENCE.findall(text) if info.strip().lower() in ("", "json")]
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except ValueError:
            pass
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[{\[]", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(value, (dict, list)) and value:
            return value
    return None


def module_name(title: str, taken: set[str] | None = None) -> str:
    """A snake_case module name for ``title`` that shadows no standard module and is not in ``taken``."""
    words = re.findall(r"[a-z0-9]+", title.lower())
    name = "_".join(words)[:40].strip("_") or "feature"
    if name[0].isdigit() or name.startswith("test"):  # "test*" modules would be collected as tests
        name = f"m_{name}"
    if keyword.iskeyword(name) or name in sys.stdlib_module_names:
        name = f"{name}_impl"
    taken = taken if taken is not None else set()
    unique, n = name, 2
    while unique in taken:
        unique, n = f"{name}_{n}", n + 1
    return unique


def parse_tasks(text: str, max_tasks: int) -> list[Task]:
    """The planner's tasks: ``{"tasks": [{title, description, module}]}``, a JSON list, or a numbered list."""
    data = json_object(text)
    raw: list[Any] = []
    if isinstance(data, dict) and isinstance(data.get("tasks"), list):
        raw = data["tasks"]
    elif isinstance(data, list):
        raw = data
    else:
        raw = [m.group(1) for line in text.splitlines() if (m := _LIST_ITEM.match(line))]
    tasks: list[Task] = []
    taken: set[str] = set()
    for entry in raw[:max_tasks]:
        if isinstance(entry, str):
            title, _, description = entry.partition(":")
            entry = {"title": title.strip(" *`"), "description": description.strip()}
        if not isinstance(entry, dict) or not str(entry.get("title") or entry.get("name") or "").strip():
            continue
        title = str(entry.get("title") or entry.get("name")).strip()
        wanted = str(entry.get("module") or "").removesuffix(".py")
        module = module_name(wanted or title, taken)
        taken.add(module)
        tasks.append(Task(title=title, description=str(entry.get("description") or ""), module=module))
    return tasks


@dataclass
class ParsedFiles:
    files: dict[str, str] = field(default_factory=dict)
    notes: str = ""
    problems: list[str] = field(default_factory=list)

    def add(self, name: str, content: Any) -> None:
        try:
            rel = safe_name(str(name))
        except UnsafeFileError as exc:
            self.problems.append(f"file {str(name)[:80]!r} left out: {exc}")
            return
        if not isinstance(content, str):
            self.problems.append(f"file {rel!r} left out: its content is {type(content).__name__}, not text")
            return
        self.files[rel] = content if content.endswith("\n") else content + "\n"


def _from_json(data: Any, parsed: ParsedFiles) -> bool:
    if not isinstance(data, dict) or "files" not in data:
        return False
    files = data["files"]
    if isinstance(files, dict):
        for name, content in files.items():
            parsed.add(name, content)
    elif isinstance(files, list):
        for entry in files:
            if isinstance(entry, dict):
                name = entry.get("path") or entry.get("name") or entry.get("filename")
                content = entry.get("content") if "content" in entry else entry.get("code")
                if name:
                    parsed.add(name, content)
    notes = data.get("notes")
    parsed.notes = notes if isinstance(notes, str) else ""
    return True


def _block_name(text: str, start: int, info: str, body: str) -> tuple[str | None, str]:
    """A fenced block's file name (from its info string, its first comment line, or the line above) and body."""
    found = _FILE_NAME.search(info.replace("title=", " ").replace('"', " "))
    if found:
        return found.group(1), body
    first, _, rest = body.partition("\n")
    comment = re.match(r"^\s*#\s*(?:file(?:name)?:\s*)?(\S+\.py)\s*$", first, re.I)
    if comment:
        return comment.group(1), rest
    before = [line for line in text[:start].splitlines() if line.strip()]
    if before:
        found = _FILE_NAME.search(before[-1])
        if found and len(before[-1]) < 120:
            return found.group(1), body
    return None, body


def parse_files(text: str, task: Task) -> ParsedFiles:
    """The coder's files: ``{"files": {...}, "notes": ...}`` or fenced code blocks named in or above the fence.

    An unnamed block holding ``def test_`` becomes the task's test file, another unnamed one its module.
    """
    parsed = ParsedFiles()
    if _from_json(json_object(text), parsed):
        return parsed
    unnamed: list[str] = []
    for match in _FENCE.finditer(text):
        info, body = match.group(1), match.group(2)
        if info.strip().lower() == "json":
            continue
        name, body = _block_name(text, match.start(), info, body)
        if name is None:
            unnamed.append(body)
        else:
            parsed.add(name, body)
    for body in unnamed:
        default = task.test_file if re.search(r"^\s*def test_", body, re.M) else task.source_file
        if default in parsed.files:
            parsed.problems.append(f"a code block with no file name was left out ({default!r} was already given)")
        else:
            parsed.add(default, body)
    if not parsed.files:
        parsed.problems.append('the reply held no files: answer with JSON {"files": {"name.py": "..."}} '
                               "or fenced code blocks, each named above its fence")
    parsed.notes = _FENCE.sub("", text).strip()[:500] if not parsed.notes else parsed.notes
    return parsed


def parse_verdict(text: str) -> tuple[Literal["approved", "changes"], list[str]] | None:
    """The reviewer's verdict and comments, from ``{"verdict": ..., "comments": [...]}`` or a leading word."""
    data = json_object(text)
    if isinstance(data, dict):
        raw = str(data.get("verdict") or data.get("decision") or "").strip().lower().replace(" ", "_")
        verdict = _VERDICTS.get(raw)
        if verdict is not None:
            comments = data.get("comments") or data.get("comment") or []
            if isinstance(comments, str):
                comments = [comments]
            return verdict, [str(c) for c in comments if str(c).strip()]
    for line in text.splitlines():
        words = re.findall(r"[a-z_]+", line.lower())
        hits = {_VERDICTS[w] for w in words if w in _VERDICTS}
        if len(hits) == 1:
            rest = [m.group(1) for ln in text.splitlines() if (m := _LIST_ITEM.match(ln))]
            return hits.pop(), rest
    return None
