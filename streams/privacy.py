"""PII off the record: what Conveyor keeps (history, request state, spans, dead letters, logs) is redacted.

Two detectors. The safety step's own patterns (``steps.pii``: validated emails, cards, IBANs, phone
numbers, SSNs, IPs) find PII in any text. Names, dates of birth and document numbers have no such
pattern, so steps *declare* them: a field of a registered step's Input or Output model made with
``steps.pii.pii_field`` (``json_schema_extra={"pii": True}``), or a key named with ``steps.pii.declare_pii_keys`` (a
metadata key such as an ID document's image). Wherever a JSON-like value that
Conveyor keeps holds such a field, its value becomes ``[FIELD_NAME]``, and the same values (and
their words) are masked inside the value's other strings, e.g. a greeting that quotes the name.
Request text and state travel in clear on the step topics, because the steps need them;
everything that outlives the request is scrubbed unless ``CONVEYOR_STORE_RAW_PII=true``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from steps.pii import declared_pii_keys, find_pii, pii_fields, redact

__all__ = ["Scrubber", "declared_pii_fields"]

MIN_SECRET = 3  # shorter values (and words) are not masked inside other text: "Li" would eat every "Li"
MAX_WORDED = 80  # a declared value up to this long also has its words masked (a name); a longer one only whole

_cache: tuple[frozenset[tuple[str, int, int]], frozenset[str]] | None = None


def declared_pii_fields() -> frozenset[str]:
    """Names of the fields any registered step declares PII (Input and Output models), and declared keys."""
    global _cache
    from steps.registry import registered

    defs = registered()
    keys = declared_pii_keys()
    key = frozenset((name, id(d.Input), id(d.Output)) for name, d in defs.items()) | {(k, 0, 0) for k in keys}
    if _cache is None or _cache[0] != key:
        fields: set[str] = set(keys)
        for d in defs.values():
            fields |= pii_fields(d.Input) | pii_fields(d.Output)
        _cache = (key, frozenset(fields))
    return _cache[1]


def _secrets(values: Iterable[Any], fields: frozenset[str]) -> set[str]:
    """The string forms of every declared field's value in ``values``, and their words."""
    found: set[str] = set()

    def walk(v: Any) -> None:
        if isinstance(v, Mapping):
            for k, item in v.items():
                if k in fields and item is not None and not isinstance(item, (Mapping, list)):
                    text = str(item).strip()
                    if len(text) >= MIN_SECRET:
                        found.add(text)
                        if len(text) <= MAX_WORDED:  # a name's words; not every word of a page of OCR text
                            found.update(w for w in text.split() if len(w) >= MIN_SECRET)
                walk(item)
        elif isinstance(v, list):
            for item in v:
                walk(item)

    for value in values:
        walk(value)
    return found


def _holds(value: Any, fields: frozenset[str]) -> bool:
    """Whether a declared field with a value appears anywhere in ``value``."""
    if isinstance(value, Mapping):
        return any((k in fields and v is not None) or _holds(v, fields) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds(v, fields) for v in value)
    return False


class Scrubber:
    """Masks PII in text and in JSON-like values; a no-op when raw storage is explicitly allowed."""

    def __init__(self, keep_raw: bool = False) -> None:
        self.keep_raw = keep_raw

    def text(self, value: str) -> str:
        if self.keep_raw or not value:
            return value
        return redact(value)

    def text_and_kinds(self, value: str) -> tuple[str, list[str]]:
        """The redacted text and the PII kinds found in it (``field`` when it was JSON holding declared PII)."""
        if self.keep_raw or not value:
            return value, []
        kinds: set[str] = set()
        if value.lstrip().startswith("{"):
            masked = self._json_fields(value)
            if masked is not None:
                value = masked
                kinds.add("field")
        matches = find_pii(value)
        if matches:
            value = redact(value, matches)
            kinds |= {m.kind for m in matches}
        return value, sorted(kinds)

    def value(self, value: Any, context: Mapping[str, Any] | None = None) -> Any:
        """A copy of a JSON-like value with every string scrubbed and every declared PII field masked.

        ``context`` (e.g. the request's state) supplies further declared values to mask in ``value``'s
        strings: a step's output that quotes a name an earlier step extracted.
        """
        if self.keep_raw:
            return value
        fields = declared_pii_fields()
        secrets = _secrets([value] if context is None else [value, context], fields) if fields else set()
        pattern = None
        if secrets:
            alternatives = "|".join(re.escape(s) for s in sorted(secrets, key=len, reverse=True))
            pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)
        return self._mask(value, fields, pattern)

    def _mask(self, value: Any, fields: frozenset[str], pattern: re.Pattern[str] | None) -> Any:
        if isinstance(value, str):
            return self.text(pattern.sub("[PII]", value) if pattern is not None else value)
        if isinstance(value, list):
            return [self._mask(v, fields, pattern) for v in value]
        if isinstance(value, dict):
            return {k: (f"[{k.upper()}]" if k in fields and v is not None and not isinstance(v, (dict, list))
                        else self._mask(v, fields, pattern)) for k, v in value.items()}
        return value

    def _json_fields(self, text: str) -> str | None:
        """``text`` re-encoded with declared PII masked, or ``None`` when it is not JSON or holds none."""
        fields = declared_pii_fields()
        if not fields:
            return None
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError:
            return None
        if not _holds(data, fields):
            return None
        return orjson.dumps(self.value(data)).decode("utf-8")
