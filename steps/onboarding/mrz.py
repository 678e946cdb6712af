"""The machine-readable zone of a passport (ICAO 9303 TD3: two lines of 44 characters).

:func:`mrz_lines` writes it for the document renderer; :func:`parse_mrz` reads it back from OCR
text, repairing the usual confusions (``O``/``0``, ``I``/``1``, ``S``/``5``, ``B``/``8``) by
where a field must hold digits or letters, and reports which check digits hold. A field whose
check digit holds is the most reliable reading a document offers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

__all__ = ["MrzReading", "check_digit", "mrz_lines", "parse_mrz"]

WIDTH = 44
_WEIGHTS = (7, 3, 1)
_TO_DIGIT = str.maketrans({"O": "0", "Q": "0", "D": "0", "U": "0", "I": "1", "L": "1", "T": "1", "Z": "2",
                           "S": "5", "B": "8", "G": "6", "A": "4"})
_TO_LETTER = str.maketrans({"0": "O", "1": "I", "2": "Z", "5": "S", "8": "B", "6": "G", "4": "A"})


def _value(ch: str) -> int:
    if ch.isdigit():
        return int(ch)
    if "A" <= ch <= "Z":
        return ord(ch) - ord("A") + 10
    return 0  # '<' and anything unreadable


def check_digit(text: str) -> str:
    """The ICAO 9303 check digit of ``text`` (weights 7, 3, 1; letters A=10 … Z=35; ``<`` = 0)."""
    return str(sum(_value(c) * _WEIGHTS[i % 3] for i, c in enumerate(text)) % 10)


def _name_field(surname: str, given_names: str) -> str:
    def part(s: str) -> str:
        return "<".join(re.sub(r"[^A-Z]+", " ", s.upper()).split())

    return f"{part(surname)}<<{part(given_names)}"


def _yymmdd(d: date) -> str:
    return d.strftime("%y%m%d")


def mrz_lines(*, surname: str, given_names: str, document_number: str, nationality: str, date_of_birth: date,
              sex: str, expiry_date: date, issuer: str | None = None) -> tuple[str, str]:
    """The two TD3 lines for these fields, check digits included."""
    line1 = f"P<{(issuer or nationality)[:3]}{_name_field(surname, given_names)}"[:WIDTH].ljust(WIDTH, "<")
    number = document_number.upper()[:9].ljust(9, "<")
    dob, exp = _yymmdd(date_of_birth), _yymmdd(expiry_date)
    personal = "<" * 14
    body = (f"{number}{check_digit(number)}{nationality[:3]}{dob}{check_digit(dob)}{sex[:1] if sex in 'FM' else '<'}"
            f"{exp}{check_digit(exp)}{personal}{check_digit(personal)}")
    composite = body[0:10] + body[13:20] + body[21:43]
    return line1, body + check_digit(composite)


@dataclass
class MrzReading:
    """What the MRZ says; ``checks`` maps each checked field to whether its check digit holds."""

    surname: str = ""
    given_names: str = ""
    nationality: str = ""
    issuer: str = ""
    document_number: str = ""
    date_of_birth: str = ""  # YYMMDD as printed; the extractor decides the century
    sex: str = ""
    expiry_date: str = ""
    checks: dict[str, bool] = field(default_factory=dict)
    digits: dict[str, str] = field(default_factory=dict)  # each checked field's check digit as read

    def confirms(self, name: str, value: str) -> bool:
        """Whether ``value`` (as the MRZ would write it) fits the check digit read for field ``name``."""
        return name in self.digits and check_digit(value) == self.digits[name]

    @property
    def valid(self) -> bool:
        return bool(self.checks) and all(self.checks.values())


def _clean_line(line: str, bar: str = "I") -> str:
    line = line.replace("|", bar)
    line = re.sub(r"[a-z«‹(\[{]", "<", line.replace(" ", ""))  # the MRZ is upper-case: OCR writes '<' as c, e, «
    line = re.sub(r"K(?=<<)|(?<=<<)K", "<", line)  # OCR writes '<' as «, (, or K next to another '<'
    return re.sub(r"[^A-Z0-9<]", "", line)


def _digits(s: str) -> str:
    return s.translate(_TO_DIGIT)


def _letters(s: str) -> str:
    return s.translate(_TO_LETTER)


def _find_lines(text: str, bar: str = "I") -> tuple[str, str] | None:
    lines = [_clean_line(raw, bar) for raw in text.splitlines()]
    candidates = [(i, line) for i, line in enumerate(lines) if len(line) >= 30 and line.count("<") >= 2]
    first = next(((i, line) for i, line in candidates if line.startswith("P")), None)
    if first is None:
        return None
    after = [line for i, line in candidates if i > first[0]]
    if not after:
        return None
    return first[1], after[0]


def parse_mrz(text: str) -> MrzReading | None:
    """The TD3 zone found in OCR ``text``, or ``None`` when there is none to read.

    A ``|`` is read both as ``I`` and as a border mark; the reading whose check digits hold best wins.
    """
    readings = [r for r in (_read(_find_lines(text, bar)) for bar in ("I", "")) if r is not None]
    if not readings:
        return None
    return max(readings, key=lambda r: sum(r.checks.values()))


def _read(found: tuple[str, str] | None) -> MrzReading | None:
    if found is None:
        return None
    line1, line2 = found
    line1 = line1[:WIDTH].ljust(WIDTH, "<")
    line2 = line2[:WIDTH].ljust(WIDTH, "<")
    reading = MrzReading()
    reading.issuer = _letters(line1[2:5]).replace("<", "")
    names = _letters(line1[5:]).strip("<")
    surname, _, given = names.partition("<<")
    reading.surname = " ".join(p for p in surname.split("<") if p)
    reading.given_names = " ".join(p for p in given.split("<") if p)
    number = line2[0:9]
    reading.document_number = number.replace("<", "")
    reading.digits = {"document_number": _digits(line2[9]), "date_of_birth": _digits(line2[19]),
                      "expiry_date": _digits(line2[27])}
    reading.checks["document_number"] = _digits(line2[9]) == check_digit(number)
    reading.nationality = _letters(line2[10:13]).replace("<", "")
    dob = _digits(line2[13:19])
    reading.date_of_birth = dob
    reading.checks["date_of_birth"] = _digits(line2[19]) == check_digit(dob)
    reading.sex = {"F": "F", "M": "M"}.get(_letters(line2[20]), "X")
    exp = _digits(line2[21:27])
    reading.expiry_date = exp
    reading.checks["expiry_date"] = _digits(line2[27]) == check_digit(exp)
    if not reading.checks["document_number"]:  # try the digit/letter confusions the check digit can settle
        for variant in (_letters(number[:2]) + _digits(number[2:]), _digits(number), _letters(number)):
            if _digits(line2[9]) == check_digit(variant):
                reading.document_number = variant.replace("<", "")
                reading.checks["document_number"] = True
                break
    return reading
