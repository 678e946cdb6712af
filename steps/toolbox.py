"""Tools a model may call: the ``@tool`` decorator and the registry a planner reads.

A tool is a plain Python function, sync or async. Its arguments are either one pydantic model or
keyword arguments with annotations (turned into a model); its description is the docstring's first
paragraph. :meth:`ToolDef.json_schema` is the OpenAI tool-calling declaration and
:meth:`ToolDef.call` validates the model's JSON arguments before calling the function (a sync one
in a worker thread, never on the event loop)::

    @tool
    def word_count(text: str) -> int:
        \"\"\"Count the words in a text.\"\"\"
        return len(text.split())

    await tools()["word_count"].call({"text": "a b c"})   # 3

Dependencies are injected, not passed by the model: a parameter annotated :class:`steps.deps.Deps`
or :class:`steps.base.StepContext` is left out of the argument model and filled by the caller
(``call(args, deps=..., ctx=...)``), so a tool can search the index or book usage::

    @tool(cost_usd=0.002)                      # what one call costs: budgets count it
    async def search_docs(query: str, deps: Deps) -> list[dict]: ...

``extract`` (optional) reads the tool's arguments out of a plain request for the offline planner
(``fn(text) -> dict | None``, ``None``: nothing to call it with); without one the planner fills
them by type. A pipeline names a tool by its registered name or as ``module:function``
(:func:`resolve_tool`), the way it names steps.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, overload

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from steps.workdir import import_from_workdir

if TYPE_CHECKING:  # by name only at run time: the registry must not pull in the models and clients
    from steps.base import StepContext
    from steps.deps import Deps

__all__ = [
    "ToolArgumentsError", "ToolDef", "ToolDefinitionError", "UnknownToolError", "resolve_tool", "tool", "tools",
]

TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what OpenAI accepts as a function name
F = TypeVar("F", bound=Callable[..., Any])
TOOL_ATTR = "__conveyor_tool__"
INJECTABLE = {"steps.deps.Deps": "deps", "steps.base.StepContext": "ctx"}  # annotation -> what call() fills it with
Extractor = Callable[[str], "dict[str, Any] | None"]

_TOOLS: dict[str, ToolDef] = {}


class ToolDefinitionError(Exception):
    """``@tool`` was used on a function it cannot describe: see the message for what to write."""


class UnknownToolError(LookupError):
    """A pipeline names a tool nothing registered: use a listed name or ``module:function``."""


class ToolArgumentsError(ValueError):
    """A tool was called with arguments that do not fit its model; ``errors`` lists each problem."""

    def __init__(self, message: str, errors: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.errors = errors


def _where(fn: Any) -> str:
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"


@dataclass(frozen=True)
class ToolDef:
    """A registered tool: its name, description, argument model and function."""

    name: str
    description: str
    Args: type[BaseModel]
    fn: Callable[..., Any]
    takes_model: bool = False  # fn(args: Args) rather than fn(**fields)
    cost_usd: float = 0.0  # what one call costs (a paid API): booked as usage, counted by budgets
    injected: Mapping[str, str] = field(default_factory=dict, hash=False)  # parameter -> "deps" | "ctx", filled by call()
    extract: Extractor | None = field(default=None, compare=False)  # text -> arguments, for the offline planner

    def validate(self, args: Mapping[str, Any]) -> BaseModel:
        """``args`` as the tool's argument model, or :class:`ToolArgumentsError` listing each problem."""
        try:
            model = self.Args.model_validate(dict(args))
        except (ValidationError, TypeError, ValueError) as exc:
            errors = exc.errors() if isinstance(exc, ValidationError) else [{"msg": str(exc)}]
            problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())) or 'args'}: {e['msg']}" for e in errors)
            fields = ", ".join(self.Args.model_fields) or "none"
            raise ToolArgumentsError(
                f"tool {self.name!r}: bad arguments ({problems}); it takes: {fields}", [dict(e) for e in errors]
            ) from None
        return model

    async def call(self, args: Mapping[str, Any], *, deps: Deps | None = None, ctx: StepContext | None = None) -> Any:
        """Validate ``args`` (e.g. a model's JSON arguments) and call the tool with them.

        ``deps`` and ``ctx`` fill the parameters annotated with their types; a tool that needs one
        and is not given it raises :class:`ToolDefinitionError` (a bug in the caller, not the model).
        """
        model = self.validate(args)
        call_args: tuple[Any, ...] = (model,) if self.takes_model else ()
        kwargs = {} if self.takes_model else {k: getattr(model, k) for k in self.Args.model_fields}
        given = {"deps": deps, "ctx": ctx}
        for parameter, what in self.injected.items():
            if given[what] is None:
                raise ToolDefinitionError(f"tool {self.name!r} needs {what}: call it with .call(args, {what}=...)")
            kwargs[parameter] = given[what]
        if inspect.iscoroutinefunction(self.fn):
            return await self.fn(*call_args, **kwargs)
        return await asyncio.to_thread(self.fn, *call_args, **kwargs)

    def json_schema(self) -> dict[str, Any]:
        """The OpenAI tool-calling declaration: ``{"type": "function", "function": {...}}``."""
        parameters = self.Args.model_json_schema()
        parameters.pop("title", None)
        return {"type": "function", "function": {"name": self.name, "description": self.description, "parameters": parameters}}


def _description(fn: Callable[..., Any]) -> str:
    doc = inspect.getdoc(fn) or ""
    return " ".join(doc.strip().split("\n\n")[0].split())


def _qualified(annotation: Any) -> str:
    return f"{getattr(annotation, '__module__', '')}.{getattr(annotation, '__qualname__', '')}"


def _args_model(fn: Callable[..., Any], name: str) -> tuple[type[BaseModel], bool, dict[str, str]]:
    what = f"tool {name!r} ({_where(fn)})"
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:
        raise ToolDefinitionError(f"{what}: its annotations cannot be resolved ({exc}); import them at module level") from None
    injected = {p: INJECTABLE[_qualified(h)] for p, h in hints.items() if p != "return" and _qualified(h) in INJECTABLE}
    params = [p for p in inspect.signature(fn).parameters.values() if p.name not in injected]
    if len(params) == 1:
        only = hints.get(params[0].name)
        if isinstance(only, type) and issubclass(only, BaseModel):
            if params[0].kind is inspect.Parameter.KEYWORD_ONLY:
                raise ToolDefinitionError(f"{what}: its model parameter {params[0].name!r} must not be keyword-only")
            return only, True, injected
    fields: dict[str, Any] = {}
    for p in params:
        if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD, inspect.Parameter.POSITIONAL_ONLY):
            raise ToolDefinitionError(f"{what}: parameter {p.name!r} must be a plain keyword argument (no *, **, /)")
        if p.name not in hints:
            raise ToolDefinitionError(
                f"{what}: parameter {p.name!r} has no annotation; a model needs its type, e.g. `{p.name}: str`"
            )
        fields[p.name] = (hints[p.name], ... if p.default is p.empty else p.default)
    model_name = "".join(part.capitalize() for part in re.split(r"[_-]+", name)) + "Args"
    try:
        model = create_model(model_name, __config__=ConfigDict(extra="forbid"), **fields)
    except Exception as exc:
        raise ToolDefinitionError(f"{what}: its parameters cannot form a model ({exc}); use JSON-able types") from None
    return model, False, injected


def _register(definition: ToolDef) -> None:
    existing = _TOOLS.get(definition.name)
    if existing is not None and existing.fn is not definition.fn and _where(existing.fn) != _where(definition.fn):
        raise ToolDefinitionError(
            f"tool name {definition.name!r} is already registered by {_where(existing.fn)}; "
            f"give {_where(definition.fn)} another name with @tool(name=...)"
        )
    _TOOLS[definition.name] = definition


def _make(
    fn: Callable[..., Any], name: str | None, description: str | None, cost_usd: float, extract: Extractor | None
) -> ToolDef:
    if not inspect.isfunction(fn):
        raise ToolDefinitionError(f"@tool decorates {fn!r}; decorate a function (sync or async)")
    tool_name = name or fn.__name__
    if not TOOL_NAME.match(tool_name):
        raise ToolDefinitionError(f"tool name {tool_name!r} must match {TOOL_NAME.pattern}; pass @tool(name=...)")
    text = description if description is not None else _description(fn)
    if not text:
        raise ToolDefinitionError(
            f"tool {tool_name!r} ({_where(fn)}) has no description: give it a docstring or @tool(description=...); "
            "the model reads it to decide when to call the tool"
        )
    if not (isinstance(cost_usd, (int, float)) and math.isfinite(cost_usd) and cost_usd >= 0):
        raise ToolDefinitionError(f"tool {tool_name!r}: cost_usd must be a finite number >= 0, not {cost_usd!r}")
    if extract is not None and not callable(extract):
        raise ToolDefinitionError(f"tool {tool_name!r}: extract must be a function text -> dict | None")
    model, takes_model, injected = _args_model(fn, tool_name)
    return ToolDef(tool_name, text, model, fn, takes_model, float(cost_usd), injected, extract)


def _declare(fn: F, definition: ToolDef) -> F:
    _register(definition)
    setattr(fn, TOOL_ATTR, definition)
    return fn


@overload
def tool(name: F, description: None = None, *, cost_usd: float = 0.0, extract: Extractor | None = None) -> F: ...
@overload
def tool(
    name: str | None = None, description: str | None = None, *, cost_usd: float = 0.0, extract: Extractor | None = None
) -> Callable[[F], F]: ...
def tool(
    name: Any = None, description: str | None = None, *, cost_usd: float = 0.0, extract: Extractor | None = None
) -> Any:
    """Register a function as a tool; use as ``@tool``, ``@tool()`` or ``@tool("name", "what it does", cost_usd=0.01)``."""
    if callable(name):
        return _declare(name, _make(name, None, description, cost_usd, extract))

    def decorate(fn: F) -> F:
        return _declare(fn, _make(fn, name, description, cost_usd, extract))

    return decorate


def tools() -> dict[str, ToolDef]:
    """Every registered tool by name (a copy)."""
    return dict(_TOOLS)


def resolve_tool(ref: str) -> ToolDef:
    """The tool a pipeline names: a registered name, or ``module:function`` importable from cwd/PYTHONPATH."""
    if ":" not in ref:
        found = _TOOLS.get(ref)
        if found is None:
            raise UnknownToolError(
                f"tool {ref!r} is not a known tool; registered: {sorted(_TOOLS)}; or write module:function "
                "for a @tool in your own module (e.g. mytools:lookup)"
            )
        return found
    module_name, _, attribute = ref.partition(":")
    if not module_name or not attribute:
        raise UnknownToolError(f"tool {ref!r}: write module:function, e.g. mytools:lookup")
    try:
        module = import_from_workdir(module_name)  # a user's tools live in the folder the worker runs from
    except ImportError as exc:
        raise UnknownToolError(
            f"tool {ref!r}: importing {module_name!r} failed ({exc}); run the worker from the folder that holds "
            f"{module_name.replace('.', '/')}.py, or add that folder to PYTHONPATH"
        ) from None
    obj: Any = module
    for part in attribute.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            here = sorted(k for k, v in vars(module).items() if isinstance(getattr(v, TOOL_ATTR, None), ToolDef))
            raise UnknownToolError(f"tool {ref!r}: module {module_name!r} has no {attribute!r}; tools it defines: {here}")
    definition = getattr(obj, TOOL_ATTR, None)
    if not isinstance(definition, ToolDef):
        raise UnknownToolError(f"tool {ref!r} is not a tool: decorate it with @tool (from streams import tool)")
    return definition
