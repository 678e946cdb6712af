"""Reading a tool's arguments out of a plain request, for the offline planner (no model to fill them).

A tool's own ``extract`` function wins (:mod:`steps.builtin_tools` has some). Otherwise each field
of its argument model is filled by its type:

- a field the text names outright (``k=5``, ``timezone: Europe/Paris``) takes that value;
- ``date`` fields take the dates of the text in order (ISO ``2024-03-01``, "March 1, 2024",
  "1 March 2024", today / tomorrow / yesterday): a date in a request is rarely incidental;
- required numbers take the text's numbers in order; optional ones keep their default, because a
  number in a question ("python 3 lists") is more often part of it than an argument;
- one required string takes the quoted passage, else what follows a colon, else the whole clause
  (a search query is the question itself); several take the quoted passages in order;
- a required ``Literal`` takes the option the text mentions.

A required field that nothing fills makes :func:`extract_arguments` return ``None`` with the reason,
so the planner skips that tool and says why, rather than calling it with a guess.
"""

from __future__ import annotations

import re
import types
import typing
from datetime import date, datetime, timedelta, timezone
from typing import Any, Literal

from steps.toolbox import ToolArgumentsError, ToolDef

__all__ = ["dates_in", "extract_arguments"]

_MONTHS = {m: i + 1 for i, m in enumerate(
    ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november",
     "december"])}
_MONTHS.update({m[:3]: n for m, n in list(_MONTHS.items())})
_MONTHS["sept"] = 9
_MONTH = "(" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_DATE_PATTERNS = (
    (re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b"), lambda m: (int(m[1]), int(m[2]), int(m[3]))),
    (re.compile(rf"\b{_MONTH}\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})\b", re.I),
     lambda m: (int(m[3]), _MONTHS[m[1].lower()], int(m[2]))),
    (re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}\s+(\d{{4}})\b", re.I),
     lambda m: (int(m[3]), _MONTHS[m[2].lower()], int(m[1]))),
)
_RELATIVE = re.compile(r"\b(today|tomorrow|yesterday|now)\b", re.I)
_QUOTED = re.compile(r"\"([^\"]+)\"|“([^”]+)”|'([^']{2,})'(?!\w)")
_INT = re.compile(r"(?<![\w.])-?\d+(?![\w.])")
_FLOAT = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])")


def dates_in(text: str, today: date | None = None) -> list[date]:
    """The dates ``text`` mentions, in the order it mentions them."""
    today = today or datetime.now(timezone.utc).date()
    found: list[tuple[int, date]] = []
    taken: list[range] = []
    for pattern, parts in _DATE_PATTERNS:
        for m in pattern.finditer(text):
            if any(m.start() in r for r in taken):
                continue
            try:
                found.append((m.start(), date(*parts(m))))
                taken.append(range(m.start(), m.end()))
            except ValueError:  # 2024-02-31
                continue
    offsets = {"today": 0, "now": 0, "tomorrow": 1, "yesterday": -1}
    found += [(m.start(), today + timedelta(days=offsets[m[1].lower()])) for m in _RELATIVE.finditer(text)]
    return [d for _, d in sorted(found, key=lambda f: f[0])]


def _quoted(text: str) -> list[str]:
    return [next(g for g in m.groups() if g) for m in _QUOTED.finditer(text)]


def _base(annotation: Any) -> tuple[Any, bool]:
    """(the type inside ``X | None``, whether None is allowed)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return (args[0] if len(args) == 1 else annotation), len(args) < len(typing.get_args(annotation))
    return annotation, False


def _named(text: str, name: str) -> str | None:
    m = re.search(rf"\b{re.escape(name)}\s*[=:]\s*(\"[^\"]*\"|'[^']*'|[^\s,;]+)", text)
    return m.group(1).strip("\"'") if m else None


def extract_arguments(tool: ToolDef, text: str) -> tuple[dict[str, Any] | None, str]:
    """(arguments for ``tool`` from ``text``, "") or (``None``, why it cannot be called from this text)."""
    if tool.extract is not None:
        found = tool.extract(text)
        if found is None:
            return None, f"{tool.name} found nothing in the request to work on"
        return _checked(tool, dict(found))
    fields = tool.Args.model_fields
    args: dict[str, Any] = {}
    dates = dates_in(text)
    ints = [int(x) for x in _INT.findall(text)]
    floats = [float(x) for x in _FLOAT.findall(text)]
    required_strs = [n for n, f in fields.items() if f.is_required() and _base(f.annotation)[0] is str]
    quoted = _quoted(text)
    for name, info in fields.items():
        kind, _ = _base(info.annotation)
        named = _named(text, name)
        if named is not None:
            args[name] = named
        elif kind is date or kind is datetime:
            if dates:
                args[name] = dates.pop(0)
        elif not info.is_required():
            continue
        elif kind is int and ints:
            args[name] = ints.pop(0)
        elif kind is float and floats:
            args[name] = floats.pop(0)
        elif kind is str:
            if len(required_strs) == 1:
                colon = re.search(r":\s*(\S.*)$", text, re.S)
                args[name] = quoted[0] if quoted else colon.group(1).strip() if colon else text.strip().rstrip("?.! ")
            elif quoted:
                args[name] = quoted.pop(0)
        elif typing.get_origin(kind) is Literal:
            options = [o for o in typing.get_args(kind) if re.search(rf"\b{re.escape(str(o))}\b", text, re.I)]
            if options:
                args[name] = options[0]
        if info.is_required() and name not in args:
            what = getattr(kind, "__name__", str(kind))
            return None, f"{tool.name} needs {name!r} ({what}) and the request gives none"
    return _checked(tool, args)


def _checked(tool: ToolDef, args: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    try:
        model = tool.validate(args)
    except ToolArgumentsError as exc:
        return None, str(exc)
    return model.model_dump(mode="json", include=set(args)), ""
