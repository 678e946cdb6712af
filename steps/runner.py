"""The runner of one pipeline node's step: warm up once, then run it per message.

Built by :meth:`steps.registry.StepDef.build`. The warm-up-once guard lives here, written once
for every step: ``warm_up`` is idempotent and safe when several nodes (or tasks) share a runner.
A sync function step or ``warm_up`` runs in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from steps.base import FatalStepError, StepContext

if TYPE_CHECKING:
    from steps.registry import StepDef

__all__ = ["StepNotWarmedError", "StepRunner", "where"]


class StepNotWarmedError(RuntimeError):
    """``run`` was called before ``warm_up``: await ``runner.warm_up(deps)`` first."""


def where(target: Any) -> str:
    """``module:qualname`` of a step's function or class, for error messages."""
    return f"{getattr(target, '__module__', '?')}:{getattr(target, '__qualname__', repr(target))}"


class StepRunner:
    """One node's step, as the runtime drives it: warm up once, then ``run`` per message."""

    def __init__(
        self, definition: StepDef, call: Callable[..., Any], warm: Callable[[Any], Any] | None, instance: Any
    ) -> None:
        self.definition = definition
        self.name = definition.name
        self.Input = definition.Input
        self.Output = definition.Output
        self.uses_history = definition.uses_history
        self.instance = instance
        self.parks = bool(getattr(instance, "parks", False))  # the approval step: the runtime parks its requests
        turn = getattr(instance if instance is not None else definition.target, "turn", None)
        self.turn: Callable[..., Any] | None = turn if callable(turn) else None
        self._call = call
        self._warm = warm
        self._warmed = warm is None
        self._lock = asyncio.Lock()

    @property
    def warmed(self) -> bool:
        return self._warmed

    async def warm_up(self, deps: Any) -> None:
        """Run the step's ``warm_up(deps)`` once, however many nodes or tasks await this together.

        A warm-up that raised is not marked done: the next call tries again.
        """
        if self._warmed:
            return
        async with self._lock:
            if self._warmed or self._warm is None:
                return
            if inspect.iscoroutinefunction(self._warm):
                await self._warm(deps)
            else:
                await asyncio.to_thread(self._warm, deps)
            self._warmed = True

    async def run(self, input: BaseModel | Mapping[str, Any], ctx: StepContext) -> BaseModel:
        """The step's output for ``input``; a non-``Output`` return is a :class:`FatalStepError`."""
        if not self._warmed:
            raise StepNotWarmedError(
                f"step {self.name!r}: run() before warm_up(); await runner.warm_up(deps) first (the worker does)"
            )
        data = self._input(input)
        args: tuple[Any, ...] = (data, ctx) if self.definition.takes_ctx else (data,)
        if self.definition.is_async:
            out = await self._call(*args)
        else:
            out = await asyncio.to_thread(self._call, *args)
        if not isinstance(out, self.Output):
            raise FatalStepError(
                f"step {self.name!r} ({where(self.definition.target)}) returned {type(out).__name__}, not "
                f"{self.Output.__name__}: return an instance of the model its run is annotated with"
            )
        return out

    def _input(self, value: BaseModel | Mapping[str, Any]) -> BaseModel:
        if isinstance(value, self.Input):
            return value
        try:
            return self.Input.model_validate(value.model_dump() if isinstance(value, BaseModel) else dict(value))
        except ValidationError as exc:
            raise FatalStepError(f"step {self.name!r}: input does not fit {self.Input.__name__}: {exc}") from None
