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
"""

from __future__ import annotations

import asyncio
import inspect
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

__all__ = ["ToolArgumentsError", "ToolDef", "ToolDefinitionError", "tool", "tools"]

TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what OpenAI accepts as a function name
F = TypeVar("F", bound=Callable[..., Any])

_TOOLS: dict[str, ToolDef] = {}


class ToolDefinitionError(Exception):
    """``@tool`` was used on a function it cannot describe: see the message for what to write."""


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

    async def call(self, args: Mapping[str, Any]) -> Any:
        """Validate ``args`` (e.g. a model's JSON arguments) and call the tool with them."""
        try:
            model = self.Args.model_validate(dict(args))
        except (ValidationError, TypeError, ValueError) as exc:
            errors = exc.errors() if isinstance(exc, ValidationError) else [{"msg": str(exc)}]
            problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())) or 'args'}: {e['msg']}" for e in errors)
            fields = ", ".join(self.Args.model_fields) or "none"
            raise ToolArgumentsError(
                f"tool {self.name!r}: bad arguments ({problems}); it takes: {fields}", [dict(e) for e in errors]
            ) from None
        call_args: tuple[Any, ...] = (model,) if self.takes_model else ()
        kwargs = {} if self.takes_model else {k: getattr(model, k) for k in self.Args.model_fields}
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


def _args_model(fn: Callable[..., Any], name: str) -> tuple[type[BaseModel], bool]:
    what = f"tool {name!r} ({_where(fn)})"
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:
        raise ToolDefinitionError(f"{what}: its annotations cannot be resolved ({exc}); import them at module level") from None
    params = list(inspect.signature(fn).parameters.values())
    if len(params) == 1:
        only = hints.get(params[0].name)
        if isinstance(only, type) and issubclass(only, BaseModel):
            return only, True
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
    return model, False


def _register(definition: ToolDef) -> None:
    existing = _TOOLS.get(definition.name)
    if existing is not None and existing.fn is not definition.fn and _where(existing.fn) != _where(definition.fn):
        raise ToolDefinitionError(
            f"tool name {definition.name!r} is already registered by {_where(existing.fn)}; "
            f"give {_where(definition.fn)} another name with @tool(name=...)"
        )
    _TOOLS[definition.name] = definition


def _make(fn: Callable[..., Any], name: str | None, description: str | None) -> ToolDef:
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
    model, takes_model = _args_model(fn, tool_name)
    return ToolDef(tool_name, text, model, fn, takes_model)


@overload
def tool(name: F, description: None = None) -> F: ...
@overload
def tool(name: str | None = None, description: str | None = None) -> Callable[[F], F]: ...
def tool(name: Any = None, description: str | None = None) -> Any:
    """Register a function as a tool; use as ``@tool``, ``@tool()`` or ``@tool("name", "what it does")``."""
    if callable(name):
        fn = name
        _register(_make(fn, None, description))
        return fn

    def decorate(fn: F) -> F:
        _register(_make(fn, name, description))
        return fn

    return decorate


def tools() -> dict[str, ToolDef]:
    """Every registered tool by name (a copy)."""
    return dict(_TOOLS)
