"""Importing a user's module by name, from the folder the worker runs in (or ``PYTHONPATH``).

Pipelines name steps and tools as ``module:attribute``; both are looked up the same way: the
current working directory is put on ``sys.path`` (where a user keeps ``mysteps.py``) and the
import caches are refreshed, so a module written after the process started is found. Import
errors are raised as they are: the caller says what its reference was.
"""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType

__all__ = ["import_from_workdir"]


def import_from_workdir(module: str) -> ModuleType:
    """``importlib.import_module(module)`` with the working directory on ``sys.path``."""
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    importlib.invalidate_caches()
    return importlib.import_module(module)
