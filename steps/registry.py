"""Declaring steps and tools: the ``@step`` and ``@tool`` decorators, and how a pipeline finds them.

A step is an async function, or a class for steps that load models::

    @step("shout")
    async def shout(input: Text, ctx: StepContext) -> Loud: ...

    @step("retrieval")
    class Retrieval:
        def __init__(self, top_k: int = 4) -> None: ...          # JSON-able config, checked at load
        async def warm_up(self, deps: Deps) -> None: ...          # optional: heavy loading, once
        async def run(self, input: RetrievalInput, ctx: StepContext) -> RetrievalOutput: ...

Input and Output are read from the annotations and must be pydantic models; ``ctx`` is optional. A
plain ``def`` runs in a worker thread (``asyncio.to_thread``), never on the event loop. The
decorator returns its target unchanged, with its :class:`StepDef` attached, so a pipeline can name
the step by its registered name or as ``module:attribute``. :meth:`StepDef.build` makes the
:class:`StepRunner` the runtime drives: it holds the warm-up-once guard, so no step writes one.

Errors (all raised while a pipeline loads, never per message)::

    StepLoadError
    ├── StepDefinitionError   a decorator used wrongly: bad name, missing or non-pydantic annotations
    │   └── DuplicateStepError  one name, two different targets
    ├── UnknownStepError      a name nothing registered
    ├── StepImportError       ``module:attribute`` that does not import or is not a step
    └── StepConfigError       a node's config that the step's ``__init__`` does not accept
    StepNotWarmedError        (RuntimeError) ``run`` before ``warm_up``: a bug in the caller

Tools (``@tool``, ``tools()``) live in :mod:`steps.toolbox` and are re-exported here.
"""

from __future__ import annotations

import inspect
import os
import re
import sys
import typing
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from steps.runner import StepNotWarmedError, StepRunner
from steps.runner import where as _where
from steps.toolbox import ToolArgumentsError, ToolDef, ToolDefinitionError, tool, tools
from steps.workdir import import_from_workdir

__all__ = [
    "DuplicateStepError",
    "StepConfigError",
    "StepDef",
    "StepDefinitionError",
    "StepImportError",
    "StepLoadError",
    "StepNotWarmedError",
    "StepRunner",
    "ToolArgumentsError",
    "ToolDef",
    "ToolDefinitionError",
    "UnknownStepError",
    "registered",
    "resolve",
    "step",
    "tool",
    "tools",
]

STEP_ATTR = "__conveyor_step__"
NAME = re.compile(r"^[a-z][a-z0-9-]*$")
T = TypeVar("T")
StepKind = Literal["function", "class"]

_STEPS: dict[str, StepDef] = {}


class StepLoadError(Exception):
    """A step could not be declared, found or configured; the message says what to change."""


class StepDefinitionError(StepLoadError):
    """``@step`` was used on something that is not a step: see the message for what to write."""


class DuplicateStepError(StepDefinitionError):
    """Two different functions or classes claim one step name: rename one of them."""


class UnknownStepError(StepLoadError):
    """A pipeline names a step nothing registered: use a listed name or ``module:attribute``."""


class StepImportError(StepLoadError):
    """A ``module:attribute`` reference did not import, or names something that is not a step."""


class StepConfigError(StepLoadError):
    """A node's config does not fit the step's ``__init__``: fix the named key."""

    def __init__(self, message: str, *, step: str, key: str | None = None, accepted: list[str] | None = None) -> None:
        super().__init__(message)
        self.step = step
        self.key = key
        self.accepted = accepted or []


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _hints(fn: Callable[..., Any], what: str, localns: dict[str, Any] | None, extras: bool = False) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn, localns=localns, include_extras=extras)
    except Exception as exc:  # NameError for an undefined or TYPE_CHECKING-only name, TypeError for bad ones
        raise StepDefinitionError(
            f"{what}: its annotations cannot be resolved ({type(exc).__name__}: {exc}); import every type it "
            "names at module level (not under TYPE_CHECKING) and define models before the step"
        ) from None


def _is_model(annotation: Any) -> bool:
    return inspect.isclass(annotation) and not typing.get_args(annotation) and issubclass(annotation, BaseModel)


def _io_models(
    fn: Callable[..., Any], what: str, example: str, skip_self: bool, localns: dict[str, Any] | None
) -> tuple[type[BaseModel], type[BaseModel], bool]:
    """(Input, Output, takes ctx) from ``fn(input: In[, ctx]) -> Out``."""
    params = list(inspect.signature(fn).parameters.values())[1 if skip_self else 0 :]
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if not 1 <= len(params) <= 2 or any(p.kind not in positional for p in params):
        raise StepDefinitionError(f"{what} takes ({', '.join(p.name for p in params)}); write `{example}`")
    hints = _hints(fn, what, localns)
    first = params[0].name
    if not _is_model(hints.get(first)):
        got = "no annotation" if first not in hints else f"annotation {_type_name(hints[first])}"
        raise StepDefinitionError(f"{what}: parameter {first!r} has {got}; it must be a pydantic model: `{example}`")
    if not _is_model(hints.get("return")):
        got = "no return annotation" if "return" not in hints else f"return annotation {_type_name(hints['return'])}"
        raise StepDefinitionError(f"{what} has {got}; it must return a pydantic model: `{example}`")
    return hints[first], hints["return"], len(params) == 2


def _config_model(cls: type, what: str, localns: dict[str, Any] | None) -> type[BaseModel]:
    """A pydantic model of the keyword arguments ``cls.__init__`` accepts (its config)."""
    init = cls.__init__  # type: ignore[misc]
    fields: dict[str, Any] = {}
    extra: Literal["allow", "forbid"] = "forbid"
    if init is not object.__init__:
        hints = _hints(init, f"{what}.__init__", localns, extras=True)  # Annotated[float, Field(gt=0)] constrains
        for p in list(inspect.signature(init).parameters.values())[1:]:
            if p.kind is inspect.Parameter.VAR_KEYWORD:
                extra = "allow"
            elif p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.VAR_POSITIONAL):
                raise StepDefinitionError(
                    f"{what}.__init__ has positional parameter {p.name!r}; config arrives as keyword arguments: "
                    f"write `def __init__(self, {p.name}: int = 0) -> None`"
                )
            else:
                fields[p.name] = (hints.get(p.name, Any), ... if p.default is p.empty else p.default)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a key that shadows a BaseModel attribute is fine here
            return create_model(
                f"{cls.__name__}Config",
                __config__=ConfigDict(extra=extra, protected_namespaces=(), arbitrary_types_allowed=True),
                **fields,
            )
    except Exception as exc:
        raise StepDefinitionError(f"{what}.__init__ cannot be read as config ({exc}); use JSON-able types") from None


@dataclass(frozen=True)
class StepDef:
    """A declared step: its name, models and target; :meth:`build` makes the runner a node uses."""

    name: str
    Input: type[BaseModel]
    Output: type[BaseModel]
    kind: StepKind
    target: Any
    takes_ctx: bool = field(default=True, repr=False)
    is_async: bool = field(default=True, repr=False)
    config_model: type[BaseModel] | None = field(default=None, repr=False, compare=False)

    @property
    def uses_history(self) -> bool:
        """True when the target sets ``uses_history = True``: ``ctx.history`` is then filled."""
        return bool(getattr(self.target, "uses_history", False))

    def route_values(self) -> list[str] | None:
        """The ``Literal`` values of ``Output.route``, or ``None`` when the step does not branch."""
        route = self.Output.model_fields.get("route")
        if route is None:
            return None
        return [str(v) for v in typing.get_args(route.annotation)]

    def accepted(self) -> list[str]:
        """The config keys ``__init__`` takes, as ``key: type = default``."""
        if self.config_model is None:
            return []
        out = []
        for key, info in self.config_model.model_fields.items():
            default = "" if info.is_required() else f" = {info.default!r}"
            out.append(f"{key}: {_type_name(info.annotation)}{default}")
        return out

    def check_config(self, config: Mapping[str, Any]) -> None:
        """Raise :class:`StepConfigError` naming the first key ``__init__`` would not accept."""
        self._validated(config)

    def _validated(self, config: Mapping[str, Any]) -> dict[str, Any]:
        accepted = self.accepted()
        shown = ", ".join(accepted) or "none"
        if not isinstance(config, Mapping):
            raise StepConfigError(
                f"step {self.name!r}: config must be a mapping of keyword arguments, not {type(config).__name__}",
                step=self.name, accepted=accepted,
            )
        if self.config_model is None:
            if config:
                key = sorted(config)[0]
                raise StepConfigError(
                    f"step {self.name!r} is a function and takes no config, got key {key!r}: remove `config:` from "
                    f"the node, or make the step a class whose __init__ takes {sorted(config)} as keyword arguments",
                    step=self.name, key=key,
                )
            return {}
        model = self.config_model
        if model.model_config.get("extra") == "forbid":
            unknown = sorted(set(config) - set(model.model_fields))
            if unknown:
                raise StepConfigError(
                    f"step {self.name!r}: unknown config key {unknown[0]!r}; accepted keys: {shown}",
                    step=self.name, key=unknown[0], accepted=accepted,
                )
        try:
            validated = model.model_validate(dict(config))
        except ValidationError as exc:
            first = exc.errors()[0]
            key = ".".join(str(p) for p in first["loc"])
            got = f" (got {first['input']!r})" if first["type"] != "missing" else ""
            raise StepConfigError(
                f"step {self.name!r}: config key {key!r}: {first['msg']}{got}; accepted keys: {shown}",
                step=self.name, key=key, accepted=accepted,
            ) from None
        values = {k: getattr(validated, k) for k in validated.model_fields_set}
        values.update(validated.model_extra or {})
        return values

    def build(self, config: Mapping[str, Any] | None = None) -> StepRunner:
        """A runner for one node: checks ``config`` and, for a class step, instantiates it."""
        values = self._validated(config if config is not None else {})
        if self.kind == "function":
            return StepRunner(self, self.target, None, None)
        try:
            instance = self.target(**values)
        except Exception as exc:
            raise StepConfigError(
                f"step {self.name!r}: {_where(self.target)}(**config) raised {type(exc).__name__}: {exc}; "
                f"fix the node's config (keys given: {sorted(values)})",
                step=self.name, accepted=self.accepted(),
            ) from exc
        warm = getattr(instance, "warm_up", None)
        return StepRunner(self, instance.run, warm, instance)


def _definition_of(obj: Any) -> StepDef | None:
    found = vars(obj).get(STEP_ATTR) if hasattr(obj, "__dict__") else None  # not inherited by subclasses
    return found if isinstance(found, StepDef) else None


def _register(definition: StepDef) -> None:
    existing = _STEPS.get(definition.name)
    if existing is not None and existing.target is not definition.target and _where(existing.target) != _where(
        definition.target
    ):
        raise DuplicateStepError(
            f"step name {definition.name!r} is already registered by {_where(existing.target)}; "
            f"give {_where(definition.target)} another name (or import its module under one name only)"
        )
    _STEPS[definition.name] = definition  # the same target again (a module imported twice, a reload): keep the newest


def _define(name: str, target: Any, localns: dict[str, Any] | None) -> StepDef:
    if inspect.isclass(target):
        what = f"step {name!r} ({_where(target)})"
        run = getattr(target, "run", None)
        if not callable(run):
            raise StepDefinitionError(
                f"{what} has no run method; write `async def run(self, input: MyInput, ctx: StepContext) -> MyOutput`"
            )
        example = "async def run(self, input: MyInput, ctx: StepContext) -> MyOutput"
        input_model, output_model, takes_ctx = _io_models(run, f"{what}.run", example, True, localns)
        return StepDef(
            name, input_model, output_model, "class", target, takes_ctx, inspect.iscoroutinefunction(run),
            _config_model(target, what, localns),
        )
    if inspect.isfunction(target):
        what = f"step {name!r} ({_where(target)})"
        example = f"async def {target.__name__}(input: MyInput, ctx: StepContext) -> MyOutput"
        input_model, output_model, takes_ctx = _io_models(target, what, example, False, localns)
        return StepDef(name, input_model, output_model, "function", target, takes_ctx, inspect.iscoroutinefunction(target))
    raise StepDefinitionError(f"@step({name!r}) decorates {target!r}; decorate an async function or a class")


def step(name: str) -> Callable[[T], T]:
    """Register the decorated function or class as step ``name`` and return it unchanged."""
    if not isinstance(name, str):
        raise StepDefinitionError(f'write @step("name") with a name, not @step on {_where(name)}')
    if not NAME.match(name):
        raise StepDefinitionError(
            f"step name {name!r} must match {NAME.pattern} (lowercase, digits and hyphens): e.g. "
            f"{re.sub(r'[^a-z0-9-]+', '-', name.lower()).strip('-') or 'my-step'!r}"
        )
    caller = sys._getframe(1)
    localns = None if caller.f_locals is caller.f_globals else dict(caller.f_locals)  # steps declared in a function

    def decorate(target: T) -> T:
        definition = _define(name, target, localns)
        _register(definition)
        setattr(target, STEP_ATTR, definition)
        return target

    return decorate


def registered() -> dict[str, StepDef]:
    """Every registered step by name (a copy)."""
    return dict(_STEPS)


def _import(module: str, ref: str) -> Any:
    cwd = os.getcwd()
    try:
        return import_from_workdir(module)  # a user's steps live in the folder the worker runs from
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module == exc.name or module.startswith(exc.name + ".")):
            raise StepImportError(
                f"step {ref!r}: no module {module!r} in {cwd} or on PYTHONPATH; run the worker from the folder "
                f"that holds {module.replace('.', '/')}.py, or add that folder to PYTHONPATH"
            ) from None
        raise StepImportError(
            f"step {ref!r}: module {module!r} imports {exc.name!r}, which is not installed; install it"
        ) from exc
    except Exception as exc:
        raise StepImportError(f"step {ref!r}: importing {module!r} raised {type(exc).__name__}: {exc}") from exc


def resolve(ref: str) -> StepDef:
    """The step a pipeline names: a registered name, or ``module:attribute`` importable from cwd/PYTHONPATH."""
    if ":" not in ref:
        found = _STEPS.get(ref)
        if found is None:
            raise UnknownStepError(
                f"step {ref!r} is not a known step; registered: {sorted(_STEPS)}; "
                "or write module:attribute for a @step in your own module (e.g. mysteps:shout)"
            )
        return found
    module_name, _, attribute = ref.partition(":")
    if not module_name or not attribute:
        raise StepImportError(f"step {ref!r}: write module:attribute, e.g. mysteps:shout")
    module = _import(module_name, ref)
    obj: Any = module
    for part in attribute.split("."):
        if not hasattr(obj, part):
            steps_here = sorted(k for k, v in vars(module).items() if _definition_of(v) is not None)
            raise StepImportError(
                f"step {ref!r}: module {module_name!r} has no attribute {attribute!r}; steps it defines: {steps_here}"
            )
        obj = getattr(obj, part)
    definition = _definition_of(obj)
    if definition is None:
        raise StepImportError(
            f'step {ref!r} is {type(obj).__name__} {attribute!r}, not a step: decorate it with @step("name") '
            "(from streams import step)"
        )
    return definition

