"""The public step API: @step on functions and classes, config checks, resolve(), the runner, @tool."""

from __future__ import annotations

import ast
import asyncio
import sys
import textwrap
import threading
import uuid
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field

from steps.base import FatalStepError, StepContext
from steps.registry import (
    DuplicateStepError,
    StepConfigError,
    StepDefinitionError,
    StepImportError,
    StepLoadError,
    StepNotWarmedError,
    ToolArgumentsError,
    ToolDefinitionError,
    UnknownStepError,
    registered,
    resolve,
    step,
    tool,
    tools,
)


class Text(BaseModel):
    text: str


class Loud(BaseModel):
    shout: str


class Verdict(BaseModel):
    route: Literal["again", "done"]


@step("test-shout")
async def shout(input: Text, ctx: StepContext) -> Loud:
    return Loud(shout=f"{input.text.upper()}:{ctx.request_id}")


@step("test-count")
class Counter:
    """A class step: config in __init__, a shared dependency picked up in warm_up."""

    def __init__(self, suffix: str = "!", times: int = 1) -> None:
        self.suffix = suffix
        self.times = times
        self.warmups = 0
        self.prefix = ""

    async def warm_up(self, deps: dict[str, str]) -> None:
        self.warmups += 1
        await asyncio.sleep(0.01)  # so a second caller arrives while the first is still warming
        self.prefix = deps["prefix"]

    async def run(self, input: Text, ctx: StepContext) -> Loud:
        return Loud(shout=self.prefix + input.text * self.times + self.suffix)


def ctx() -> StepContext:
    return StepContext(request_id="r-1")


def write_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str) -> str:
    """A user's module in their own folder (the cwd), importable as ``name``; undone after the test."""
    name = f"usersteps_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.setitem(sys.modules, name, None)  # placeholder, so monkeypatch removes the real module afterwards
    del sys.modules[name]
    return name


def test_function_step_reads_its_models_from_the_annotations_and_runs() -> None:
    definition = resolve("test-shout")
    assert (definition.name, definition.kind, definition.Input, definition.Output) == ("test-shout", "function", Text, Loud)
    assert definition.target is shout and shout.__conveyor_step__ is definition  # type: ignore[attr-defined]
    assert registered()["test-shout"] is definition
    runner = definition.build({})
    assert (runner.name, runner.Input, runner.Output, runner.uses_history, runner.turn) == ("test-shout", Text, Loud, False, None)
    assert asyncio.run(runner.run(Text(text="hi"), ctx())) == Loud(shout="HI:r-1")
    assert asyncio.run(runner.run({"text": "dict"}, ctx())) == Loud(shout="DICT:r-1")  # plain data is validated
    assert asyncio.run(shout(Text(text="direct"), ctx())).shout == "DIRECT:r-1"  # the decorator returned it unchanged


def test_function_step_without_ctx_and_steps_declared_in_a_function() -> None:
    class Num(BaseModel):  # local models resolve too (from the decorating frame)
        n: int

    @step("test-local-double")
    async def double(input: Num) -> Num:
        return Num(n=input.n * 2)

    runner = resolve("test-local-double").build()
    assert asyncio.run(runner.run(Num(n=21), ctx())) == Num(n=42)


def test_class_step_takes_config_and_warms_up_once_when_awaited_together() -> None:
    definition = resolve("test-count")
    assert definition.kind == "class" and definition.accepted() == ["suffix: str = '!'", "times: int = 1"]
    runner = definition.build({"times": 2})
    with pytest.raises(StepNotWarmedError, match=r"await runner.warm_up\(deps\) first"):
        asyncio.run(runner.run(Text(text="a"), ctx()))

    async def go() -> Loud:
        await asyncio.gather(runner.warm_up({"prefix": ">"}), runner.warm_up({"prefix": ">"}))  # two nodes, one runner
        await runner.warm_up({"prefix": "again"})
        out = await runner.run(Text(text="ab"), ctx())
        assert isinstance(out, Loud)
        return out

    assert asyncio.run(go()) == Loud(shout=">abab!")
    assert runner.instance.warmups == 1 and runner.warmed


def test_a_failed_warm_up_is_tried_again() -> None:
    runner = resolve("test-count").build({})
    with pytest.raises(KeyError):
        asyncio.run(runner.warm_up({}))
    assert not runner.warmed
    asyncio.run(runner.warm_up({"prefix": "ok "}))
    assert runner.warmed and runner.instance.warmups == 2


def test_module_attribute_reference_imports_from_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = write_module(tmp_path, monkeypatch, f"""
        from pydantic import BaseModel
        from streams import step, StepContext

        class Words(BaseModel):
            text: str

        class Count(BaseModel):
            words: int

        @step("test-words-{tmp_path.name[-6:].lower().replace('_', '-')}")
        async def count(input: Words, ctx: StepContext) -> Count:
            return Count(words=len(input.text.split()))

        def helper() -> None: ...

        class Plain(BaseModel):
            x: int
        """)
    definition = resolve(f"{name}:count")
    assert definition.Input.__name__ == "Words" and str(tmp_path) in sys.path
    runner = definition.build({})
    assert asyncio.run(runner.run({"text": "one two three"}, ctx())).model_dump() == {"words": 3}
    assert resolve(definition.name) is definition  # importing the module registered its name
    with pytest.raises(StepImportError, match=rf"module '{name}' has no attribute 'cuont'; steps it defines: \['count'\]"):
        resolve(f"{name}:cuont")
    with pytest.raises(StepImportError, match=r"function 'helper', not a step: decorate it with @step\(\"name\"\)"):
        resolve(f"{name}:helper")


def test_missing_modules_and_broken_imports_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = write_module(tmp_path, monkeypatch, "import no_such_dependency_xyz\n")
    with pytest.raises(StepImportError, match=r"no module 'nowhere_xyz' in .* or on PYTHONPATH; run the worker from"):
        resolve("nowhere_xyz:shout")
    with pytest.raises(StepImportError, match=rf"module '{name}' imports 'no_such_dependency_xyz', which is not installed"):
        resolve(f"{name}:anything")
    with pytest.raises(StepImportError, match="write module:attribute"):
        resolve("mysteps:")


def test_unknown_names_list_what_is_registered() -> None:
    expected = r"step 'shuot' is not a known step; registered: \[.*'echo'.*'test-shout'.*\]; or write module:attribute"
    with pytest.raises(UnknownStepError, match=expected):
        resolve("shuot")
    assert issubclass(UnknownStepError, StepLoadError) and issubclass(StepImportError, StepLoadError)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"tims": 2}, r"step 'test-count': unknown config key 'tims'; accepted keys: suffix: str = '!', times: int = 1"),
        ({"times": "many"}, r"step 'test-count': config key 'times': Input should be a valid integer.*\(got 'many'\)"),
        ({"times": 1.5}, r"config key 'times'"),
        ([("times", 2)], r"config must be a mapping"),
    ],
)
def test_config_errors_name_the_key(config: Any, message: str) -> None:
    with pytest.raises(StepConfigError, match=message) as info:
        resolve("test-count").check_config(config)
    assert info.value.step == "test-count"


def test_config_given_to_a_function_step_and_a_missing_required_key() -> None:
    with pytest.raises(StepConfigError, match=r"'test-shout' is a function and takes no config, got key 'loud'") as info:
        resolve("test-shout").build({"loud": True})
    assert info.value.key == "loud"

    @step("test-required")
    class Required:
        def __init__(self, model: str) -> None:
            if not model:
                raise ValueError("model must not be empty")

        async def run(self, input: Text) -> Text:
            return input

    with pytest.raises(StepConfigError, match=r"config key 'model': Field required; accepted keys: model: str$"):
        resolve("test-required").check_config({})
    with pytest.raises(StepConfigError, match=r"raised ValueError: model must not be empty; fix the node's config \(keys given: \['model'\]\)"):
        resolve("test-required").build({"model": ""})
    assert resolve("test-required").build({"model": "m"}).warmed  # no warm_up: nothing to wait for


def test_bad_declarations_say_what_to_write() -> None:
    with pytest.raises(StepDefinitionError, match=r"parameter 'input' has no annotation; it must be a pydantic model: `async"):
        @step("test-bad-1")
        async def f(input, ctx: StepContext) -> Loud:  # type: ignore[no-untyped-def]
            return Loud(shout="")
    with pytest.raises(StepDefinitionError, match=r"parameter 'input' has annotation str; it must be a pydantic model"):
        @step("test-bad-2")
        async def g(input: str) -> Loud:
            return Loud(shout=input)
    with pytest.raises(StepDefinitionError, match=r"has no return annotation; it must return a pydantic model"):
        @step("test-bad-3")
        async def h(input: Text):  # type: ignore[no-untyped-def]
            return Loud(shout="")
    with pytest.raises(StepDefinitionError, match=r"takes \(a, b, c\); write `async def k\(input: MyInput, ctx: StepContext\)"):
        @step("test-bad-4")
        async def k(a: Text, b: StepContext, c: int) -> Loud:
            return Loud(shout="")
    with pytest.raises(StepDefinitionError, match=r"has no run method; write `async def run\(self, input: MyInput"):
        @step("test-bad-5")
        class NoRun:
            pass
    with pytest.raises(StepDefinitionError, match=r"annotations cannot be resolved .*'Undefined'.*import every type"):
        @step("test-bad-6")
        async def m(input: Undefined) -> Loud:  # type: ignore[name-defined]  # noqa: F821
            return Loud(shout="")
    with pytest.raises(StepDefinitionError, match=r"must match \^\[a-z\]\[a-z0-9-\]\*\$ .*e\.g\. 'my-step'"):
        step("My_Step")
    with pytest.raises(StepDefinitionError, match=r'write @step\("name"\) with a name'):
        step(shout)  # type: ignore[arg-type]
    assert not {n for n in registered() if n.startswith("test-bad")}


def test_one_name_two_targets_is_an_error_but_the_same_target_again_is_not() -> None:
    async def other(input: Text) -> Loud:
        return Loud(shout="")

    with pytest.raises(DuplicateStepError, match=r"'test-shout' is already registered by .*:shout; give .*other another name"):
        step("test-shout")(other)
    assert step("test-shout")(shout) is shout and resolve("test-shout").target is shout


def test_route_values_come_from_the_output_literal() -> None:
    @step("test-judge")
    async def judge(input: Text) -> Verdict:
        return Verdict(route="done")

    assert resolve("test-judge").route_values() == ["again", "done"]
    assert resolve("test-shout").route_values() is None
    assert resolve("classification").route_values() == ["question", "smalltalk", "abuse"]


def test_a_sync_function_step_runs_in_a_worker_thread() -> None:
    seen: dict[str, Any] = {}

    @step("test-sync")
    def blocking(input: Text, ctx: StepContext) -> Loud:
        seen["thread"] = threading.get_ident()
        try:
            asyncio.get_running_loop()
            seen["loop"] = True
        except RuntimeError:
            seen["loop"] = False
        return Loud(shout=input.text)

    definition = resolve("test-sync")
    assert definition.kind == "function" and not definition.is_async
    assert asyncio.run(definition.build().run(Text(text="x"), ctx())) == Loud(shout="x")
    assert seen == {"thread": seen["thread"], "loop": False} and seen["thread"] != threading.get_ident()


def test_a_wrong_return_type_is_fatal() -> None:
    @step("test-liar")
    async def liar(input: Text) -> Loud:
        return Text(text="not loud")  # type: ignore[return-value]

    with pytest.raises(FatalStepError, match=r"'test-liar' \(.*liar\) returned Text, not Loud: return an instance"):
        asyncio.run(resolve("test-liar").build().run(Text(text="x"), ctx()))


def test_builtin_steps_are_registered_with_their_history_and_turns() -> None:
    assert {"classification", "retrieval", "generation", "safety", "echo"} <= set(registered())
    generation = resolve("generation").build({"max_tokens": 100})
    assert generation.uses_history and generation.turn is not None and generation.instance.max_tokens == 100
    echo = resolve("echo").build({})
    assert not echo.uses_history and echo.warmed
    assert asyncio.run(echo.run({"text": "hi", "hops": 1}, ctx())).model_dump() == {"hops": 2, "answer": "hi"}
    with pytest.raises(StepConfigError, match=r"unknown config key 'top_k'; accepted keys: none"):
        resolve("echo").check_config({"top_k": 1})


class SearchArgs(BaseModel):
    query: str
    k: int = 3


@tool
def word_count(text: str, unique: bool = False) -> int:
    """Count the words in a text.

    Splits on whitespace; ``unique`` counts each word once.
    """
    words = text.split()
    return len(set(words) if unique else words)


@tool("test_search", description="Search the knowledge base.")
async def search(args: SearchArgs) -> list[str]:
    return [f"{args.query}-{i}" for i in range(args.k)]


def test_tools_are_registered_called_with_validated_arguments_and_described() -> None:
    registry = tools()
    count, found = registry["word_count"], registry["test_search"]
    assert count.description == "Count the words in a text." and count.fn is word_count
    assert asyncio.run(count.call({"text": "a b a", "unique": True})) == 2
    assert asyncio.run(found.call({"query": "json"})) == ["json-0", "json-1", "json-2"] and found.Args is SearchArgs
    with pytest.raises(ToolArgumentsError, match=r"'word_count': bad arguments \(text: Field required\); it takes: text, unique"):
        asyncio.run(count.call({}))
    with pytest.raises(ToolArgumentsError, match=r"k: Input should be a valid integer") as info:
        asyncio.run(found.call({"query": "q", "k": "many"}))
    assert info.value.errors[0]["loc"] == ("k",)
    with pytest.raises(ToolArgumentsError, match=r"colour: Extra inputs are not permitted"):
        asyncio.run(count.call({"text": "a", "colour": "red"}))
    assert count.json_schema() == {
        "type": "function",
        "function": {
            "name": "word_count",
            "description": "Count the words in a text.",
            "parameters": {
                "type": "object",
                "properties": {"text": {"title": "Text", "type": "string"},
                               "unique": {"default": False, "title": "Unique", "type": "boolean"}},
                "required": ["text"],
                "additionalProperties": False,
            },
        },
    }
    assert found.json_schema()["function"]["parameters"]["required"] == ["query"]


def test_a_sync_tool_runs_in_a_worker_thread_and_field_descriptions_reach_the_schema() -> None:
    threads: list[int] = []

    @tool(name="test_where")
    def where(city: Annotated[str, Field(description="a city name")]) -> str:
        """Where a city is."""
        threads.append(threading.get_ident())
        return city

    assert asyncio.run(tools()["test_where"].call({"city": "Oslo"})) == "Oslo" and threads[0] != threading.get_ident()
    assert tools()["test_where"].json_schema()["function"]["parameters"]["properties"]["city"]["description"] == "a city name"


def test_bad_tools_say_what_to_write() -> None:
    with pytest.raises(ToolDefinitionError, match=r"has no description: give it a docstring or @tool\(description=...\)"):
        @tool
        def undocumented(x: int) -> int:
            return x
    with pytest.raises(ToolDefinitionError, match=r"parameter 'x' has no annotation; a model needs its type"):
        @tool(description="d")
        def untyped(x):  # type: ignore[no-untyped-def]
            return x
    with pytest.raises(ToolDefinitionError, match=r"must be a plain keyword argument"):
        @tool(description="d")
        def star(*xs: int) -> int:
            return 0
    with pytest.raises(ToolDefinitionError, match=r"tool name 'bad name' must match"):
        tool("bad name", "d")(word_count)

    def another(text: str) -> int:
        """Another counter."""
        return 0

    with pytest.raises(ToolDefinitionError, match=r"'word_count' is already registered by .*:word_count"):
        tool(name="word_count")(another)


def _runtime_imports(path: Path) -> set[str]:
    """Modules of ``steps`` that ``path`` imports at module level (not under TYPE_CHECKING, not in functions)."""
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("steps."):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("steps.")}
    return found


def test_steps_modules_import_one_another_without_cycles() -> None:
    graph = {f"steps.{p.stem}": _runtime_imports(p) for p in Path("steps").glob("*.py") if p.stem != "__init__"}
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> None:
        assert state.get(module) != 1, f"import cycle: {' -> '.join(path + [module])}"
        if state.get(module) == 2:
            return
        state[module] = 1
        for dep in graph.get(module, ()):
            visit(dep, path + [module])
        state[module] = 2

    for module in graph:
        visit(module, [])
    assert "steps.deps" not in {d for m in ("steps.provider_factory", "steps.providers", "steps.registry") for d in graph[m]}
