"""The README's code blocks, for the tests that run them unchanged."""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["README", "snippet"]

README = Path(__file__).resolve().parents[1] / "README.md"


def snippet(first_line: str) -> str:
    """The fenced python/yaml block of the README that starts with ``first_line``."""
    for block in re.findall(r"```(?:python|yaml)\n(.*?)```", README.read_text(encoding="utf-8"), re.S):
        if block.startswith(first_line):
            return str(block)
    raise AssertionError(f"README has no block starting with {first_line!r}")
