"""The planner's tools: the built-in ones, argument reading for the offline planner, and the toolbox additions."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path
from typing import Any

import pytest

import steps.builtin_tools  # noqa: F401 - registers the built-in tools
from steps.base import StepContext
from steps.builtin_tools import CalculatorError, arithmetic_in, evaluate, place_in, text_to_count
from steps.deps import Deps, ResourceConfig
from steps.tool_args import dates_in, extract_arguments
from steps.tool_calls import ToolExecutor, summarise_arguments
from steps.toolbox import ToolDefinitionError, UnknownToolError, resolve_tool, tool, tools


@tool(cost_usd=0.25)
def paid_echo(text: str, ctx: StepContext) -> str:
    """Repeat a text back (a paid service, for the tests)."""
    return f"{ctx.request_id}: {text}"


@tool
def scale(factor: float, label: str = "x") -> str:
    """Scale a quantity by a factor."""
    return f"{label}*{factor}"


@tool
def fails(text: str) -> str:
    """Always fails."""
    raise KeyError("no such thing")


@pytest.mark.parametrize(("expression", "value"), [
    ("2 + 3 * 4", 14), ("(12 + 7) * 3", 57), ("2^10", 1024), ("7 / 2", 3.5), ("7 // 2", 3), ("-3 ** 2", -9),
    ("sqrt(144) + abs(-2)", 14), ("round(pi, 3)", 3.142), ("0.1 + 0.2", 0.3), ("10 % 4", 2),
])
def test_calculator_evaluates_arithmetic(expression: str, value: float) -> None:
    assert evaluate(expression) == value


@pytest.mark.parametrize(("expression", "says"), [
    ("__import__('os').system('true')", "not arithmetic"), ("(1).__class__", "not arithmetic"),
    ("open('x')", "not arithmetic"), ("9 ** 9 ** 9", "exponent"), ("1 / 0", "division by zero"),
    ("2 +", "not a well-formed"), ("x + 1", "not arithmetic"), ("", "1 to 200"), ("(-8) ** 0.5", "complex"),
])
def test_calculator_refuses_what_is_not_safe_arithmetic(expression: str, says: str) -> None:
    with pytest.raises(CalculatorError, match=says):
        evaluate(expression)


@pytest.mark.parametrize(("text", "expression"), [
    ("What is 15% of 80 plus 3?", "(15/100)*80 + 3"), ("what's 3 times (4 plus 1)", "3 * (4 + 1)"),
    ("square root of 1764", "sqrt(1764)"), ("multiply 128 by 3", "128*3"), ("subtract 5 from 12", "12-5"),
    ("calculate 7 x 6", "7*6"), ("compute (12+7)*3 please", "(12+7)*3"),
])
def test_arithmetic_is_read_from_a_sentence(text: str, expression: str) -> None:
    assert arithmetic_in(text) == {"expression": expression}


@pytest.mark.parametrize("text", ["days between 2024-01-01 and 2024-03-01", "what is new in python 3.11.2",
                                  "meet me at 10:30", "hello there"])
def test_dates_versions_and_prose_are_not_arithmetic(text: str) -> None:
    assert arithmetic_in(text) is None


def test_word_count_and_its_text() -> None:
    assert text_to_count('count the words in "to be or not"') == {"text": "to be or not"}
    assert text_to_count("how many words are in the sentence the cat sat?") == {"text": "the cat sat"}
    assert text_to_count("count the words please") is None
    assert asyncio.run(tools()["text_stats"].call({"text": "One two. Three!"})) == {"words": 3, "characters": 15, "sentences": 2}


def test_time_zone_is_found_by_place() -> None:
    assert place_in("what time is it in New York?") == {"timezone": "America/New_York"}
    assert place_in("current time in Europe/Paris") == {"timezone": "Europe/Paris"}
    assert place_in("what day is it") == {"timezone": "UTC"}
    now = asyncio.run(tools()["current_time"].call({"timezone": "Asia/Tokyo"}))
    assert now["timezone"] == "Asia/Tokyo" and now["iso"].endswith("+09:00")
    with pytest.raises(ValueError, match="IANA"):
        asyncio.run(tools()["current_time"].call({"timezone": "Mars/Olympus"}))


def test_dates_are_read_in_order() -> None:
    today = date(2026, 11, 25)
    assert dates_in("from March 3, 2020 to 2024-02-29 and 1st of June 2021, or tomorrow", today) == [
        date(2020, 3, 3), date(2024, 2, 29), date(2021, 6, 1), date(2026, 11, 26)]
    assert dates_in("2024-02-31 is not a day", today) == []


def test_arguments_are_filled_by_type() -> None:
    args, why = extract_arguments(tools()["date_diff"], "how many days between 1 January 2025 and 2025-03-15?")
    assert (args, why) == ({"start": "2025-01-01", "end": "2025-03-15"}, "")
    result = asyncio.run(tools()["date_diff"].call(args))
    assert result["days"] == 73 and "73 days after" in result["summary"]
    assert extract_arguments(tools()["scale"], "scale it by 2.5") == ({"factor": 2.5}, "")
    assert extract_arguments(tools()["scale"], "scale by 3 with label=width") == ({"factor": 3.0, "label": "width"}, "")
    # optional numbers keep their default: the 3 of "python 3" is part of the query, not k
    assert extract_arguments(tools()["search_docs"], "how do I use python 3 lists?") == (
        {"query": "how do I use python 3 lists"}, "")


def test_a_tool_whose_arguments_are_missing_is_not_called_with_a_guess() -> None:
    args, why = extract_arguments(tools()["scale"], "scale the picture")
    assert args is None and "needs 'factor'" in why
    args, why = extract_arguments(tools()["calculator"], "what is arithmetic?")
    assert args is None and "calculator found nothing" in why


def test_injected_parameters_stay_out_of_the_schema_and_are_filled_by_call() -> None:
    echo = tools()["paid_echo"]
    assert echo.cost_usd == 0.25 and echo.injected == {"ctx": "ctx"}
    assert list(echo.json_schema()["function"]["parameters"]["properties"]) == ["text"]
    assert asyncio.run(echo.call({"text": "hi"}, ctx=StepContext(request_id="r-1"))) == "r-1: hi"
    with pytest.raises(ToolDefinitionError, match="needs ctx"):
        asyncio.run(echo.call({"text": "hi"}))
    search = tools()["search_docs"]
    assert search.injected == {"deps": "deps"} and "deps" not in search.Args.model_fields


def test_tool_definition_errors_say_what_to_write() -> None:
    def priced(x: int) -> int:
        """Cost the earth."""
        return x

    with pytest.raises(ToolDefinitionError, match="cost_usd must be a finite number >= 0, not -1"):
        tool(cost_usd=-1)(priced)

    def undocumented(x: int) -> int:
        return x

    with pytest.raises(ToolDefinitionError, match="no description"):
        tool(undocumented)


def test_tools_resolve_by_name_or_module_function() -> None:
    assert resolve_tool("calculator").name == "calculator"
    assert resolve_tool("tests.steps.test_planner_tools:scale").name == "scale"
    with pytest.raises(UnknownToolError, match=r"'nope' is not a known tool; registered: \[.*'calculator'"):
        resolve_tool("nope")
    with pytest.raises(UnknownToolError, match="tools it defines: .*'scale'"):
        resolve_tool("tests.steps.test_planner_tools:missing")
    with pytest.raises(UnknownToolError, match="is not a tool"):
        resolve_tool("tests.steps.test_planner_tools:evaluate")
    with pytest.raises(UnknownToolError, match="importing 'no_such_module' failed"):
        resolve_tool("no_such_module:x")


def test_executor_records_results_errors_costs_and_spans(tmp_path: Path) -> None:
    ctx = StepContext(request_id="r-2")
    chosen = {n: tools()[n] for n in ("paid_echo", "fails", "calculator")}
    executor = ToolExecutor(chosen, ctx, Deps(ResourceConfig(index_dir=tmp_path)), result_chars=100)

    async def go() -> list[Any]:
        return [await executor.call("paid_echo", {"text": "x" * 300}, 1, call_id="c1"),
                await executor.call("paid_echo", {"txt": "x"}, 1),
                await executor.call("fails", {"text": "x"}, 2),
                await executor.call("calculator", {}, 2, raw_arguments="{oops"),
                await executor.call("ghost", {}, 3)]

    (long, _), (bad, bad_text), (failed, _), (unreadable, _), (ghost, _) = asyncio.run(go())
    assert long.error is None and long.result.endswith("… [truncated: 305 chars]") and len(long.result) < 140
    assert "bad arguments" in (bad.error or "") and "it takes: text" in bad_text and bad.cost_usd == 0
    assert failed.error == "tool 'fails' failed: KeyError: 'no such thing'"
    assert "not a JSON object" in (unreadable.error or "")
    assert "no tool named 'ghost'" in (ghost.error or "") and "calculator" in (ghost.error or "")
    # only the call that ran is paid for, and booked as usage
    assert [(u.model, u.cost_usd) for u in ctx.usage] == [("tool:paid_echo", 0.25)]
    assert [(s.name, s.kind, s.status) for s in ctx.spans] == [
        ("paid_echo", "tool", "ok"), ("paid_echo", "tool", "error"), ("fails", "tool", "error"),
        ("calculator", "tool", "error"), ("ghost", "tool", "error")]
    first = ctx.spans[0].attributes
    assert first["gen_ai.tool.name"] == "paid_echo" and first["gen_ai.tool.call.id"] == "c1"
    assert first["arguments"] == "text: str(300)" and "xxx" not in str(first)  # sizes, never values
    assert summarise_arguments({"k": 3, "q": "abc"}) == "k: int, q: str(3)"
    assert executor.affordable("paid_echo", 0.5) and not executor.affordable("paid_echo", 0.4)
    assert executor.affordable("calculator", 0.0)  # free tools always are
