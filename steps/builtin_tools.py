"""Built-in tools for the planner: arithmetic, word counts, the time, date differences, the docs.

Each is an ordinary ``@tool``, registered when this module is imported (``steps.planner`` imports
it), and each works offline. The ones whose arguments a plain request does not spell out in an
obvious way carry an ``extract`` function for the offline planner (:mod:`steps.planner_offline`):
``calculator`` finds the arithmetic in "what is 15% of 80 plus 3", ``text_stats`` the text to
count, ``current_time`` the place. ``search_docs`` needs the retrieval index: it asks for
:class:`steps.deps.Deps`, which the planner injects.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from datetime import date, datetime, timezone
from functools import lru_cache
from typing import Any, Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from steps.deps import Deps
from steps.toolbox import tool

__all__ = ["CalculatorError", "arithmetic_in", "calculator", "current_time", "date_diff", "evaluate", "search_docs",
           "text_stats"]

MAX_EXPRESSION_CHARS = 200
MAX_POWER = 1000  # 10**1000 is fine; 9**9**9 would take minutes and gigabytes
MAX_ABS = 1e300


class CalculatorError(ValueError):
    """An expression the calculator will not evaluate; the message says what it accepts."""


_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt, "abs": abs, "round": round, "min": min, "max": max, "log": math.log, "log10": math.log10,
    "exp": math.exp, "floor": math.floor, "ceil": math.ceil, "sin": math.sin, "cos": math.cos, "tan": math.tan,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}
ACCEPTS = "numbers, + - * / // % ** (or ^), parentheses, " + ", ".join(sorted(_FUNCTIONS)) + ", pi and e"


def _eval(node: ast.AST) -> Any:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_POWER:
            raise CalculatorError(f"exponent {right} is too large (at most {MAX_POWER})")
        value = _BINARY[type(node.op)](left, right)
        if isinstance(value, complex):
            raise CalculatorError("the result is a complex number: the calculator works with real numbers")
        if abs(value) > MAX_ABS:
            raise CalculatorError(f"the result is larger than {MAX_ABS:g}")
        return value
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS and not node.keywords:
        return _FUNCTIONS[node.func.id](*(_eval(a) for a in node.args))
    raise CalculatorError(f"{ast.unparse(node)!r} is not arithmetic; the calculator accepts {ACCEPTS}")


def evaluate(expression: str) -> int | float:
    """The value of an arithmetic expression, from its syntax tree (never ``eval``): ``evaluate("2^10") == 1024``."""
    text = expression.strip().replace("^", "**").replace("×", "*").replace("÷", "/")
    if not text or len(text) > MAX_EXPRESSION_CHARS:
        raise CalculatorError(f"give an expression of 1 to {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise CalculatorError(f"{expression!r} is not a well-formed expression; the calculator accepts {ACCEPTS}") from None
    try:
        value = _eval(tree)
    except (ZeroDivisionError, OverflowError, ValueError, TypeError) as exc:
        if isinstance(exc, CalculatorError):
            raise
        raise CalculatorError(f"{expression!r} cannot be computed: {exc}") from None
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 2**53:
            return int(value)
        return float(f"{value:.12g}")
    return int(value)


_N = r"(-?\d+(?:\.\d+)?)"
_WORD_OPERATORS = (
    (rf"\bmultiply\s+{_N}\s+(?:by|and|with)\s+{_N}", r"\1*\2"),
    (rf"\bdivide\s+{_N}\s+by\s+{_N}", r"\1/\2"),
    (rf"\badd\s+{_N}\s+(?:and|to)\s+{_N}", r"\1+\2"),
    (rf"\bsubtract\s+{_N}\s+from\s+{_N}", r"\2-\1"),
    (r"(\d+(?:\.\d+)?)\s*(?:%|percent)\s+of\s+", r"(\1/100)*"),
    (r"\bsquare root of\s+(\d+(?:\.\d+)?)", r"sqrt(\1)"),
    (r"(\d+(?:\.\d+)?)\s+squared\b", r"\1**2"),
    (r"(\d+(?:\.\d+)?)\s+cubed\b", r"\1**3"),
    (r"\b(?:to the power of|raised to(?: the power of)?)\b", "**"),
    (r"\b(?:multiplied by|times)\b", "*"),
    (r"(?<=\d)\s*x\s*(?=\d)", "*"),
    (r"\b(?:divided by|over)\b", "/"),
    (r"\bplus\b", "+"),
    (r"\bminus\b", "-"),
    (r"\bmodulo\b|\bmod\b", "%"),
)
_FUNCTION_NAMES = "|".join(sorted(list(_FUNCTIONS) + list(_CONSTANTS), key=len, reverse=True))
_EXPRESSION = re.compile(rf"(?:\b(?:{_FUNCTION_NAMES})\b|[\d.]+|[-+*/%^()×÷,]|\s)+")
_NOT_ARITHMETIC = re.compile(r"\b\d{4}-\d{1,2}-\d{1,2}\b|\b\d{1,2}:\d{2}\b|\b\d+(?:\.\d+){2,}\b")  # dates, times, versions
_OPERATOR = re.compile(r"[-+*/%^×÷]|\b(?:" + _FUNCTION_NAMES + r")\(")


def arithmetic_in(text: str) -> dict[str, Any] | None:
    """``{"expression": ...}`` for the arithmetic in a sentence ("what is 3 times (4 plus 1)?"), or ``None``."""
    normal = _NOT_ARITHMETIC.sub(" ; ", text.lower())
    for pattern, replacement in _WORD_OPERATORS:
        normal = re.sub(pattern, replacement, normal)
    best = ""
    for match in _EXPRESSION.finditer(normal):
        candidate = match.group(0).strip().strip(",").strip()
        while candidate.count("(") < candidate.count(")") and candidate.endswith(")"):
            candidate = candidate[:-1].rstrip()
        if re.search(r"\d|\bpi\b", candidate) and _OPERATOR.search(candidate) and len(candidate) > len(best):
            try:
                ast.parse(candidate.replace("^", "**").replace("×", "*").replace("÷", "/"), mode="eval")
            except SyntaxError:
                continue
            best = candidate
    return {"expression": best} if best else None


@tool(extract=arithmetic_in)
def calculator(expression: str) -> int | float:
    """Calculate the value of an arithmetic expression: add, subtract, multiply, divide numbers, powers, percentages, square roots.

    Accepts numbers, + - * / // % ** (or ^), parentheses and sqrt, abs, round, min, max, log, exp, sin, cos, tan.
    """
    return evaluate(expression)


_QUOTED = re.compile(r"\"([^\"]+)\"|“([^”]+)”|'([^']{2,})'(?!\w)")
_AFTER_COLON = re.compile(r":\s*(\S.*)$", re.S)
_TEXT_AFTER = re.compile(r"\b(?:words|characters|letters|sentences)\s+(?:are\s+)?(?:in|of)\s+(?:the\s+(?:text|sentence|phrase)\s+)?(\S.*)$", re.I | re.S)


def quoted_text(text: str) -> str | None:
    """The first quoted passage of ``text`` (straight or curly quotes), or what follows its first colon."""
    match = _QUOTED.search(text)
    if match:
        return next(g for g in match.groups() if g)
    after = _AFTER_COLON.search(text)
    return after.group(1).strip() if after else None


def text_to_count(text: str) -> dict[str, Any] | None:
    """The text a word-count request is about: quoted, after a colon, or after "words in"; else ``None``."""
    found = quoted_text(text)
    if found is None:
        match = _TEXT_AFTER.search(text)
        found = match.group(1).strip().rstrip("?") if match else None
    return {"text": found} if found else None


@tool(extract=text_to_count)
def text_stats(text: str) -> dict[str, int]:
    """Count the words, characters and sentences in a piece of text: how many words, how long is a text."""
    words = re.findall(r"\b[\w'’-]+\b", text)
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]
    return {"words": len(words), "characters": len(text), "sentences": len(sentences)}


@lru_cache(maxsize=1)
def _zones_by_place() -> dict[str, str]:
    """"tokyo" -> "Asia/Tokyo", "new york" -> "America/New_York", "utc" -> "UTC" (the IANA database's places)."""
    places: dict[str, str] = {}
    for zone in sorted(available_timezones()):
        if zone.startswith(("Etc/", "SystemV/", "posix/", "right/")):
            continue
        place = zone.rsplit("/", 1)[-1].replace("_", " ").lower()
        places.setdefault(place, zone)
    places.update({"utc": "UTC", "gmt": "UTC"})
    return places


def place_in(text: str) -> dict[str, Any]:
    """``{"timezone": ...}`` for the first place in ``text`` that names an IANA time zone; UTC when none does."""
    lowered = text.lower()
    explicit = re.search(r"\b[A-Z][A-Za-z]+/[A-Za-z_]+(?:/[A-Za-z_]+)?\b", text)
    if explicit and explicit.group(0) in available_timezones():
        return {"timezone": explicit.group(0)}
    found = [(m.start(), zone) for place, zone in _zones_by_place().items()
             for m in [re.search(rf"\b{re.escape(place)}\b", lowered)] if m]
    return {"timezone": min(found)[1]} if found else {"timezone": "UTC"}


@tool(extract=place_in)
def current_time(timezone: str = "UTC") -> dict[str, str]:
    """Tell the current time and today's date, the day of the week, what time it is now in a city or time zone."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {timezone!r}: give an IANA name such as 'Europe/Paris' or 'UTC'") from None
    now = datetime.now(zone)
    return {"timezone": timezone, "iso": now.isoformat(timespec="seconds"), "date": now.date().isoformat(),
            "time": now.strftime("%H:%M"), "weekday": now.strftime("%A")}


@tool
def date_diff(start: date, end: date | None = None) -> dict[str, Any]:
    """Count the days and weeks between two dates, how long until or since a date (the second date defaults to today)."""
    last = end if end is not None else datetime.now(timezone.utc).date()
    days = (last - start).days
    if days == 0:
        said = f"{start.isoformat()} and {last.isoformat()} are the same day"
    else:
        said = f"{last.isoformat()} is {abs(days)} day{'s' if abs(days) != 1 else ''} {'after' if days > 0 else 'before'} {start.isoformat()}"
    return {"days": days, "weeks": round(days / 7, 2), "start": start.isoformat(), "end": last.isoformat(), "summary": said}


@tool
async def search_docs(query: str, deps: Deps, k: int = 3) -> list[dict[str, Any]]:
    """Search the Python documentation: how do I do something in Python code, how to use a module, class or function, what an exception means, how a language feature works.

    Returns the best passages, with their titles and sources.
    """
    index = await deps.index()
    vector = (await deps.embedder.embed([query]))[0]
    hits = await deps.embedder.run_sync(index.search, vector, max(1, min(k, 10)))
    return [{"title": h.title, "source": h.source, "score": round(h.score, 3), "text": " ".join(h.text.split())[:300]}
            for h in hits]
