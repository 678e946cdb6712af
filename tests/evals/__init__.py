"""Evaluation sets and their measurements (issue 8): each module measures one area on its own labelled data.

A module ``tests/evals/<area>.py`` defines ``measure() -> list[Row]``: one row per figure, on a
named split of a set in ``tests/data/eval/`` (``tune`` is what thresholds were chosen on; ``test``
was never used to choose anything). ``tests/evals/test_<area>.py`` holds the floors that
``make test`` enforces, and ``conveyor eval`` prints every module's rows as one table.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DATA", "Row", "areas", "docs_deps", "measure_all"]

DATA = Path(__file__).resolve().parents[1] / "data" / "eval"


@dataclass
class Row:
    """One measured figure: ``value`` on ``n`` examples of ``split``; ``floor`` is what the tests require."""

    area: str
    metric: str
    value: float
    n: int
    split: str = "test"
    floor: float | None = None
    higher_is_better: bool = True
    failures: list[str] = field(default_factory=list)  # a few examples that still fail, for the record

    @property
    def passes(self) -> bool:
        if self.floor is None:
            return True
        return self.value >= self.floor if self.higher_is_better else self.value <= self.floor


def areas() -> list[str]:
    """The evaluation modules present (every ``tests/evals/*.py`` that is not a test file)."""
    here = Path(__file__).resolve().parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith(("test_", "_")))


def measure_all(only: list[str] | None = None) -> list[Row]:
    rows: list[Row] = []
    for area in areas():
        if only and area not in only:
            continue
        module = importlib.import_module(f"tests.evals.{area}")
        rows.extend(module.measure())
    return rows


_DEPS: list[object] = []


def docs_deps() -> object:
    """The process's :class:`steps.deps.Deps` over the real Python-docs index (built once, cached on disk).

    Evaluations of retrieval and answers use the product's own index; the first call on a fresh
    machine builds it (minutes), later ones load ``~/.cache/conveyor/index``.
    """
    if not _DEPS:
        from steps.deps import Deps, ResourceConfig
        from streams.app import Settings

        settings = Settings()
        _DEPS.append(Deps(ResourceConfig(index_dir=settings.index_dir, corpus_path=settings.corpus)))
    return _DEPS[0]
