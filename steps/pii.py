"""PII detection and redaction with validating regexes (Luhn for cards, mod-97 for IBANs, real IP parsing).

Names, dates of birth and document numbers have no pattern a regex could validate, so a step
declares them instead: a model field made with :func:`pii_field` (or carrying
``json_schema_extra={"pii": True}``) is personal data wherever its value goes, and
:func:`pii_fields` lists such fields of a model for the runtime's scrubber (``streams.privacy``).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Callable

from pydantic import BaseModel, Field

__all__ = ["PII_MARK", "PiiMatch", "declare_pii_keys", "declared_pii_keys", "find_pii", "pii_field", "pii_fields",
           "redact"]

PII_MARK = "pii"  # the json_schema_extra key that declares a field personal data


_DECLARED_KEYS: set[str] = set()


def declare_pii_keys(*keys: str) -> None:
    """Declare JSON keys whose values are personal data wherever they appear (e.g. a metadata key a step reads)."""
    _DECLARED_KEYS.update(keys)


def declared_pii_keys() -> frozenset[str]:
    """The keys :func:`declare_pii_keys` declared."""
    return frozenset(_DECLARED_KEYS)


def pii_field(default: Any = ..., **kwargs: Any) -> Any:
    """A pydantic ``Field`` declared as personal data (masked wherever Conveyor keeps a copy)."""
    return Field(default, json_schema_extra={PII_MARK: True}, **kwargs)


def pii_fields(model: type[BaseModel]) -> frozenset[str]:
    """Names of ``model``'s fields declared personal data, nested models' fields included."""
    found: set[str] = set()
    seen: set[type[BaseModel]] = set()

    def visit(m: type[BaseModel]) -> None:
        if m in seen:
            return
        seen.add(m)
        for name, info in m.model_fields.items():
            extra = info.json_schema_extra
            if isinstance(extra, dict) and extra.get(PII_MARK) is True:
                found.add(name)
            annotation = info.annotation
            candidates = [annotation, *getattr(annotation, "__args__", ())]
            for c in candidates:
                if isinstance(c, type) and issubclass(c, BaseModel):
                    visit(c)

    visit(model)
    return frozenset(found)


@dataclass(frozen=True)
class PiiMatch:
    kind: str
    start: int
    end: int
    text: str


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card_ok(text: str) -> bool:
    digits = re.sub(r"\D", "", text)
    return 13 <= len(digits) <= 19 and luhn_ok(digits)


def _iban_ok(text: str) -> bool:
    iban = text.replace(" ", "").upper()
    if not 15 <= len(iban) <= 34:
        return False
    moved = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


_ISO_DATE = re.compile(r"(19|20)\d\d-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])")  # 2030-06-01 is a date, not a phone


def _ip_ok(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# (kind, pattern, validator); earlier kinds win where matches overlap
_DETECTORS: list[tuple[str, re.Pattern[str], Callable[[str], bool]]] = [
    ("email", re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b"), lambda s: True),
    ("credit_card", re.compile(r"\b\d(?:[ -]?\d){12,18}\b"), _card_ok),
    ("iban", re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b"), _iban_ok),
    (
        "ipv6",
        re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])"),
        lambda s: len(re.findall(r"[0-9A-Fa-f]", s)) >= 6 and _ip_ok(s),
    ),
    ("ipv4", re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"), _ip_ok),
    ("us_ssn", re.compile(r"\b\d{3}-\d{2}-\d{4}\b"), lambda s: not s.startswith(("000", "666", "9"))),
    (
        "phone",
        re.compile(r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d{2,4}[\s.-]\d{2,4}(?:[\s.-]\d{2,4}){0,2}(?!\w)"),
        lambda s: 8 <= len(re.sub(r"\D", "", s)) <= 15 and not _ISO_DATE.fullmatch(s),
    ),
]


def find_pii(text: str) -> list[PiiMatch]:
    """Non-overlapping PII matches in ``text``, in order of position."""
    taken: list[PiiMatch] = []
    for kind, pattern, valid in _DETECTORS:
        for m in pattern.finditer(text):
            if not valid(m.group(0)):
                continue
            if any(m.start() < t.end and t.start < m.end() for t in taken):
                continue
            taken.append(PiiMatch(kind, m.start(), m.end(), m.group(0)))
    return sorted(taken, key=lambda t: t.start)


def redact(text: str, matches: list[PiiMatch] | None = None) -> str:
    """``text`` with every PII match replaced by ``[KIND]``."""
    matches = find_pii(text) if matches is None else matches
    out, pos = [], 0
    for m in matches:
        out.append(text[pos : m.start])
        out.append(f"[{m.kind.upper()}]")
        pos = m.end
    out.append(text[pos:])
    return "".join(out)
