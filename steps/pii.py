"""PII detection and redaction: every candidate is validated before it is masked.

Emails follow RFC 5322's practical subset (apostrophes, plus-addressing, subdomains, Unicode letters);
IBANs are checked against their country's length and the mod-97 checksum *before* the card check runs,
so a card number is never found inside an IBAN; cards pass Luhn and start like a card (2-6); US SSNs
are found with separators, or bare with a context word ("SSN", "social security"); IPs are parsed by
:mod:`ipaddress` (loopback, unspecified and netmasks are not personal data); phone numbers are parsed
and validated by ``phonenumbers``: international forms (``+CC`` or ``00CC``) on their own, national
forms when their shape ("(415) 555-0132"), trunk prefix ("020 7946 0958") or a nearby word says they are
phones. A strong word ("phone", "Telefon", "móvil", "电话") admits even a bare run of digits; a weak
one ("call", "ring", which also name function calls and ring buffers) only a grouped number. ISO dates,
versions, hashes, ports, timestamps, ISBNs and ordinary numbers in code are not masked.

Names, dates of birth and document numbers have no pattern a regex could validate, so a step
declares them instead: a model field made with :func:`pii_field` (or carrying
``json_schema_extra={"pii": True}``) is personal data wherever its value goes, and
:func:`pii_fields` lists such fields of a model for the runtime's scrubber (``streams.privacy``).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Callable

import phonenumbers
from pydantic import BaseModel, Field

__all__ = ["PII_KINDS", "PII_MARK", "PiiMatch", "declare_pii_keys", "declared_pii_keys", "find_pii", "iban_ok",
           "luhn_ok", "pii_field", "pii_fields", "redact"]

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


PII_KINDS = ("email", "iban", "credit_card", "ipv6", "ipv4", "us_ssn", "phone")  # earlier kinds win overlaps

_SP = "[ \u00a0]"  # a space inside a value (plain or no-break)


def _before(text: str, start: int, width: int = 48) -> str:
    return text[max(0, start - width) : start]


# --- email ------------------------------------------------------------------------------------------

_ATEXT = r"[\w!#$%&'*+/=?^`{|}~-]"  # RFC 5322 atext (Unicode letters too, as RFC 6531 allows)
_EMAIL = re.compile(
    rf"(?<![\w.@!#$%&'*+/=?^`{{|}}~-]){_ATEXT}+(?:\.{_ATEXT}+)*"  # local part: dot-atoms, starting a token
    r"@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,63}"  # domain: labels, then a top-level domain of letters
    r"(?![\w@-]|:[\w~/])"  # not git@github.com:org/repo (an SSH remote, not a person)
)
_EMAIL_OBFUSCATED = re.compile(
    r"(?<![\w.+'-])[\w.+'-]+ ?[\[(<{] ?at ?[\])>}] ?[\w-]+(?: ?[\[(<{] ?dot ?[\])>}] ?[\w-]+)+", re.IGNORECASE
)


def _emails(text: str) -> list[tuple[int, int]]:
    found: list[tuple[int, int]] = []
    if "@" in text:
        for m in _EMAIL.finditer(text):
            start = m.start()
            while text[start] in "'`{|}~":  # a quote before the address is not part of it
                start += 1
            found.append((start, m.end()))
    if "at" in text.lower():
        found += [m.span() for m in _EMAIL_OBFUSCATED.finditer(text)]
    return found


# --- IBAN -------------------------------------------------------------------------------------------

_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "BY": 28,
    "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20,
    "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19,
    "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # ISO 13616 registry: each country's IBAN length
_IBAN_START = re.compile(r"(?<![A-Za-z0-9])([A-Za-z]{2})(\d{2})")
_IBAN_CHAR = re.compile(r"[ \u00a0-]?([A-Za-z0-9])")


def iban_ok(text: str) -> bool:
    """Whether ``text`` (spaces allowed) is an IBAN: a known country, its length, and the mod-97 checksum."""
    iban = re.sub(r"[\s-]", "", text).upper()
    if _IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban.isalnum() or not iban[2:4].isdigit():
        return False
    moved = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _iban_shapes(text: str) -> list[tuple[int, int]]:
    """Spans shaped like an IBAN (a country code, two digits, the country's length), checksum not yet checked."""
    found: list[tuple[int, int]] = []
    for m in _IBAN_START.finditer(text):
        length = _IBAN_LENGTHS.get(m.group(1).upper())
        if length is None:
            continue
        pos, chars = m.end(), length - 4
        while chars:
            c = _IBAN_CHAR.match(text, pos)
            if c is None:
                break
            pos, chars = c.end(), chars - 1
        if not chars and not (pos < len(text) and text[pos].isalnum()):
            found.append((m.start(), pos))
    return found


def _ibans(text: str) -> list[tuple[int, int]]:
    return [(a, b) for a, b in _iban_shapes(text) if iban_ok(text[a:b])]


# --- payment cards ----------------------------------------------------------------------------------

_CARD = re.compile(r"(?<![\w.,-])\d(?:[ .-]?\d){12,18}(?![\w-]|[.,]\d)")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card_grouped(text: str) -> bool:
    """Printed as cards are: unbroken, in fours (4-4-4-4, 4-4-4-4-3), or 4-6-5 / 4-6-4 (Amex, Diners)."""
    groups = [len(g) for g in re.split(r"[ .-]", text)]
    if len(groups) == 1:
        return True
    return all(g == 4 for g in groups[:-1]) or groups in ([4, 6, 5], [4, 6, 4])


def _card_ok(text: str) -> bool:
    digits = re.sub(r"\D", "", text)
    return 13 <= len(digits) <= 19 and digits[0] in "23456" and _card_grouped(text) and luhn_ok(digits)


def _cards(text: str) -> list[tuple[int, int]]:
    found: list[tuple[int, int]] = []
    for m in _CARD.finditer(text):
        value = m.group(0)
        # the whole run, else its longest prefix that ends at a separator ("4111 1111 1111 1111 12")
        ends = [len(value)] + [i for i in range(len(value) - 1, 0, -1) if value[i] in " .-"]
        for end in ends:
            if _card_ok(value[:end]):
                found.append((m.start(), m.start() + end))
                break
    return found


# --- IP addresses -----------------------------------------------------------------------------------

_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|\d{1,3}(?:\.\d{1,3}){3})?(?![\w:]|\.\d)")
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
_VERSION_BEFORE = re.compile(r"(?:\b(?:v|ver|version|versión|release|build|python|pip|node)\.?|==|>=|<=|~=)\s*$", re.I)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if ip.is_loopback or ip.is_unspecified or str(ip).startswith("255."):
        return None  # 127.0.0.1, ::1, 0.0.0.0 and netmasks point at nobody
    return ip


def _ipv6s(text: str) -> list[tuple[int, int]]:
    if "::" not in text and text.count(":") < 7:
        return []
    return [m.span() for m in _IPV6.finditer(text)
            if len(re.findall(r"[0-9A-Fa-f]", m.group(0))) >= 6 and _ip(m.group(0)) is not None]


def _ipv4s(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in _IPV4.finditer(text)
            if _ip(m.group(0)) is not None and not _VERSION_BEFORE.search(_before(text, m.start(), 16))]


# --- US social security numbers ---------------------------------------------------------------------

_SSN = re.compile(r"(?:(?<![\w.,/+-])|(?<=[^\W\d_]-))(\d{3})([- .]?)(\d{2})\2(\d{4})(?![\w/-]|[.,]\d)")
_SSN_CONTEXT = re.compile(
    r"\b(?:ssn|ss#|ssa|social[ -]?security|soc\.? ?sec|seguridad social|seguro social|sécurité sociale"
    r"|sozialversicherung\w*|itin|taxpayer|tax id)\b",
    re.IGNORECASE,
)


def _ssns(text: str) -> list[tuple[int, int]]:
    found: list[tuple[int, int]] = []
    for m in _SSN.finditer(text):
        area, sep, group, serial = m.groups()
        if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
            continue
        if sep in ("", ".") and not _SSN_CONTEXT.search(_before(text, m.start()) + " " + text[m.end() : m.end() + 24]):
            continue  # a bare (or dotted) nine-digit number is an SSN only where a word says so
        found.append(m.span())
    return found


# --- phone numbers ----------------------------------------------------------------------------------

_PSEP = rf"(?:{_SP}?[-./]{_SP}?|{_SP})"
_NOT_CJK_WORD = "[^\\W\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]"  # a word character, CJK aside (no spaces there)
_PHONE = re.compile(
    # starts a token; or follows "word:" ("Tel:020…", "mobile:0791…"), or any colon when it opens with "+"/"("
    rf"(?:(?<!{_NOT_CJK_WORD})(?<![+.:/,#(-])|(?<=[^\W\d_]:)|(?<=:)(?=\(?\+))"
    rf"(?:\(?\+{_SP}?|\()?\d[\d()]*+(?:{_PSEP}\(?\d[\d()]*+)*+"
    rf"(?:{_SP}?(?:ext\.?|x|#){_SP}?\d{{1,6}})?(?!{_NOT_CJK_WORD}|@|[.:/,-]\d)",
    re.IGNORECASE,
)
# a word that says "this is a phone number": strong words alone admit a bare run of digits; weak ones
# ("call", "ring") also name function calls and ring buffers, so they admit only a grouped number
_STRONG_WORDS = (
    r"phone|telephone|tel|mobile|cell|cellphone|fax|whatsapp|sms|hotline|number is|number:|(?:call|ring|text|reach"
    r"|contact|dial|message) (?:me|us)|telefon\w*|handy|téléphone|tél|portable|teléfono|telefono|móvil|movil"
    r"|celular|cellulare|telefone|telefoon|mobiel|тел|телефон\w*|моб\w*|звон\w*|позвон\w*|هاتف|جوال|전화|휴대폰"
)
_WEAK_WORDS = (
    r"call|calling|ring|text|reach|contact|dial|signal|nummer|anruf\w*|ruf|rufen|appel\w*|numéro|ll[aá]m\w*"
    r"|chiama\w*|ligar|liga|bel|número|numero|номер"
)
_CJK_WORDS = "电话|電話|手机|手機|携帯|联系|連絡|電話番号"  # CJK is written without spaces: no word boundaries
_STRONG = re.compile(rf"\b(?:{_STRONG_WORDS})\b|{_CJK_WORDS}", re.IGNORECASE)
_WEAK = re.compile(rf"\b(?:{_WEAK_WORDS})\b", re.IGNORECASE)
_NOT_PHONE_BEFORE = re.compile(r"\b(?:isbn(?:-1[03])?|issn|doi|id|order|invoice|ticket|ref)\W{0,3}$",
                               re.IGNORECASE)
_NATIONAL_REGIONS = ("GB", "DE", "FR", "IT", "ES", "NL", "BE", "CH", "AT", "PL", "PT", "SE", "DK", "NO", "FI", "IE",
                     "IN", "AU", "BR", "MX", "AR", "JP", "CN", "KR", "RU", "TR", "ZA", "NG", "PH", "CA")
_US_SHAPE = re.compile(r"(?:\+?1[ .-]?)?(?:\(\d{3}\) ?|\d{3}[-. ])\d{3}[-. ]\d{4}")
_DATE = re.compile(
    r"(?:19|20)\d\d[-/.](?:0?[1-9]|1[0-2])[-/.](?:0?[1-9]|[12]\d|3[01])"  # ISO
    r"|(?:0?[1-9]|[12]\d|3[01])[-/.](?:0?[1-9]|1[0-2])[-/.](?:19|20)\d\d"  # day first
    r"|(?:0?[1-9]|1[0-2])[-/.](?:0?[1-9]|[12]\d|3[01])[-/.](?:19|20)\d\d"  # month first, US
    r"|(?:0?[1-9]|[12]\d|3[01])/(?:0?[1-9]|[12]\d|3[01])/\d\d(?!\d)"  # two-digit years: slashes only (06.12.34…)
)
_THOUSANDS = re.compile(r"\d{1,3}(?:[ \u00a0.]\d{3})+")
_GROUP = re.compile(r"\d+")
_EXTENSION = re.compile(rf"{_SP}?(?:ext\.?|x|#){_SP}?\d{{1,6}}$", re.IGNORECASE)
_NO_WORD, _WEAK_WORD, _STRONG_WORD = 0, 1, 2


def _phone_word(text: str, start: int, end: int) -> int:
    """How strongly the words around ``text[start:end]`` say it is a phone number."""
    around = _before(text, start) + " " + text[end : end + 24]
    if _STRONG.search(around):
        return _STRONG_WORD
    return _WEAK_WORD if _WEAK.search(around) else _NO_WORD


def _phone_valid(value: str, word: int) -> bool:
    """Whether one candidate span is a phone number (``word``: how strongly nearby words say so)."""
    value = _EXTENSION.sub("", value)  # "415-555-0132 ext. 204": the number decides, the extension goes with it
    digits = re.sub(r"\D", "", value)
    if not 7 <= len(digits) <= 17 or _DATE.search(value):
        return False
    groups = _GROUP.findall(value)
    separated = len(groups) > 1
    international = value.lstrip("(").startswith("+") or (value.startswith("00") and digits[2] != "0")
    if not international and "." in value and not re.search(r"[ \-/()]", value) and min(map(len, groups)) < 2:
        return False  # 10.0.19041.1 is a version
    if sum(len(g) == 1 for g in groups) > 2 or ("-" in value and len(groups) > 3 and len(groups[-1]) == 1):
        return False  # 0 1 2 3 4 5 6 7 is a list of digits; 0-306-40615-2 ends in a check digit (an ISBN)
    if international:
        number = _parse("+" + digits[2:] if value.startswith("00") else "+" + digits, None)
        return number is not None and (phonenumbers.is_valid_number(number)
                                       or (word > _NO_WORD and phonenumbers.is_possible_number(number)))
    if not word and _THOUSANDS.fullmatch(value):
        return False  # 1 000 000 is a count
    # a bare run of digits is a phone only where a strong word says so, and is long enough to reach someone
    if not separated and (word < _STRONG_WORD or len(digits) < 9):
        return False
    us_shape = _US_SHAPE.fullmatch(value) is not None
    if not (word or us_shape or digits[0] == "0"):
        return False  # a grouped national number needs a word, the US shape or a trunk prefix (020 7946 0958)
    if us_shape or word:
        us = _parse(value, "US")
        if us is not None and ((us_shape and phonenumbers.is_possible_number(us))  # (555) 123-4567, even fictional
                               or (word and phonenumbers.is_valid_number(us))):
            return True
    if not (word or digits[0] == "0"):
        return False
    for region in _NATIONAL_REGIONS:
        lengths = _national_lengths(region)
        if len(digits) not in lengths and len(digits) - 1 not in lengths:
            continue  # no number of that region has this many digits (with or without a trunk prefix)
        number = _parse(value, region)
        if number is not None and phonenumbers.is_valid_number(number):
            return True
    return False


@functools.cache
def _national_lengths(region: str) -> frozenset[int]:
    """How many digits a national number of ``region`` may have (phonenumbers' metadata, loaded once)."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is None or metadata.general_desc is None:
        return frozenset(range(4, 18))
    desc = metadata.general_desc
    return frozenset(desc.possible_length or ()) | frozenset(desc.possible_length_local_only or ())


def _parse(value: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None


def _windows(value: str) -> list[tuple[int, int]]:
    """The spans of ``value`` to try: runs of its digit groups (7-17 digits), leftmost first, then longest first."""
    bounds = [g.span() for g in _GROUP.finditer(value)]
    n = len(bounds)
    spans = [(0, len(value))]
    if n > 10:
        return spans
    sizes = [e - s for s, e in bounds]
    for i in range(n):
        if i > 0 and value[bounds[i][0] - 1] in "-./":
            continue  # never a number cut out of a hyphenated or dotted token (ISBN 978-0-596-52068-7)
        for j in range(i, n):
            if (i, j) != (0, n - 1) and 7 <= sum(sizes[i : j + 1]) <= 17:
                spans.append((bounds[i][0], bounds[j][1]))
    return sorted(spans, key=lambda s: (s[0], -s[1]))


_MAX_WINDOWS = 24  # windows tried per run of digit groups: bounds the work a long run of numbers costs
_TRIM = " \u00a0-./"  # separators left at either end of a run once a number is cut out of it
_LIST_SEPARATOR = re.compile(rf"{_SP}[-/]{_SP}")  # "030 1234567 / 0151 23456789": two numbers, not one


def _phones(text: str, taken: list[tuple[int, int]]) -> list[tuple[int, int]]:
    found: list[tuple[int, int]] = []
    for m in _PHONE.finditer(text):
        value = m.group(0)
        if sum(c.isdigit() for c in value) < 7 or _NOT_PHONE_BEFORE.search(_before(text, m.start(), 12)):
            continue
        word = _phone_word(text, m.start(), m.end())
        pos = 0
        for part in _LIST_SEPARATOR.split(value):
            _phones_in(part, m.start() + value.index(part, pos), word, taken, found)
            pos = value.index(part, pos) + len(part)
    return sorted(found)


def _phones_in(value: str, offset: int, word: int, taken: list[tuple[int, int]], found: list[tuple[int, int]]) -> None:
    """Phone numbers in one run of digit groups: the longest window that is one, then the runs either side."""
    trimmed = value.lstrip(_TRIM)
    offset, value = offset + len(value) - len(trimmed), trimmed.rstrip(_TRIM)
    if sum(c.isdigit() for c in value) < 7:
        return
    for a, b in _windows(value)[:_MAX_WINDOWS]:
        if a > 0 and value[a - 1] in "+(":
            a -= 1
        if b < len(value) and value[b] == ")" and "(" in value[a:b]:
            b += 1
        start, end = offset + a, offset + b
        if any(start < y and x < end for x, y in taken):
            continue  # inside an IBAN, a card, an IP or an SSN already found
        if _phone_valid(value[a:b], word):
            found.append((start, end))
            _phones_in(value[:a], offset, word, taken, found)  # "+44 20 7946 0958 +33 6 12 34 56 78"
            _phones_in(value[b:], end, word, taken, found)
            return


# each finder gets the text and the spans already taken (by earlier kinds, and IBAN-shaped runs)
_FINDERS: list[tuple[str, Callable[[str, list[tuple[int, int]]], list[tuple[int, int]]]]] = [
    ("email", lambda text, _taken: _emails(text)),
    ("iban", lambda text, _taken: _ibans(text)),  # before cards: an IBAN's digits may pass Luhn
    ("credit_card", lambda text, _taken: _cards(text)),
    ("ipv6", lambda text, _taken: _ipv6s(text)),
    ("ipv4", lambda text, _taken: _ipv4s(text)),
    ("us_ssn", lambda text, _taken: _ssns(text)),
    ("phone", _phones),
]


def find_pii(text: str) -> list[PiiMatch]:
    """Non-overlapping PII matches in ``text``, in order of position (earlier kinds win overlaps)."""
    taken: list[PiiMatch] = []
    if not text:
        return taken
    has_digit = any(c.isdigit() for c in text)
    # nothing is found inside an IBAN-shaped value, even one whose checksum fails (a mistyped IBAN is no card)
    blocked = _iban_shapes(text) if has_digit else []
    for kind, finder in _FINDERS:
        if kind != "email" and not has_digit:
            continue
        spans = [(t.start, t.end) for t in taken] + (blocked if kind not in ("iban", "email") else [])
        for start, end in finder(text, spans):
            if any(start < t.end and t.start < end for t in taken):
                continue
            if kind not in ("iban", "email") and any(start < b and a < end for a, b in blocked):
                continue
            taken.append(PiiMatch(kind, start, end, text[start:end]))
    return sorted(taken, key=lambda t: t.start)


def redact(text: str, matches: list[PiiMatch] | None = None) -> str:
    """``text`` with every PII match replaced by its type: ``[EMAIL]``, ``[PHONE]``, ``[IBAN]``…"""
    matches = find_pii(text) if matches is None else matches
    out, pos = [], 0
    for m in matches:
        out.append(text[pos : m.start])
        out.append(f"[{m.kind.upper()}]")
        pos = m.end
    out.append(text[pos:])
    return "".join(out)
