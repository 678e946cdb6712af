"""PII off the record: what Conveyor keeps (history, request state, spans, dead letters, logs) is redacted.

The detector is the safety step's own (``steps.pii``: validated emails, cards, IBANs, phone
numbers, SSNs, IPs). Request text travels in clear on the step topics, because the steps need it;
everything that outlives the request is scrubbed unless ``CONVEYOR_STORE_RAW_PII=true``.
"""

from __future__ import annotations

from typing import Any

from steps.pii import find_pii, redact

__all__ = ["Scrubber"]


class Scrubber:
    """Masks PII in text and in JSON-like values; a no-op when raw storage is explicitly allowed."""

    def __init__(self, keep_raw: bool = False) -> None:
        self.keep_raw = keep_raw

    def text(self, value: str) -> str:
        if self.keep_raw or not value:
            return value
        return redact(value)

    def text_and_kinds(self, value: str) -> tuple[str, list[str]]:
        """The redacted text and the PII kinds found in it."""
        if self.keep_raw or not value:
            return value, []
        matches = find_pii(value)
        return (redact(value, matches), sorted({m.kind for m in matches})) if matches else (value, [])

    def value(self, value: Any) -> Any:
        """A copy of a JSON-like value with every string scrubbed."""
        if self.keep_raw:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        return value
