"""Parse the OCR text of a passport page into an :class:`~steps.onboarding.applicant.Applicant`.

Two readings of the same page are combined. The labelled fields (``Surname``, ``Date of birth``
…) are found by fuzzy label matching, so ``Date of birtt`` still counts, and their values are
repaired by what they must hold (digits in a year: ``O``→``0``, ``l``→``1``; letters in a name).
The machine-readable zone (:mod:`steps.onboarding.mrz`) carries check digits: a field whose check
holds wins; otherwise the labelled value wins, and the MRZ fills what the labels miss. Fields on
which the two readings disagree are listed in ``mismatches``: OCR noise, or a page whose printed
fields were altered without its MRZ (a signal for the fraud model).
"""

from __future__ import annotations

import asyncio
import difflib
import re
from dataclasses import dataclass, field
from datetime import date

from steps.base import RejectedStepError, StepContext, StepModel
from steps.onboarding.applicant import COUNTRIES, Applicant
from steps.onboarding.mrz import MrzReading, parse_mrz
from steps.pii import pii_field
from steps.registry import step

__all__ = ["DocumentUnreadableError", "ExtractInput", "ExtractOutput", "Extraction", "REQUIRED", "extract",
           "extract_applicant", "parse_date"]

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
LABELS = {
    "document_number": ("document no", "passport no", "document number"),
    "surname": ("surname",),
    "given_names": ("given names",),
    "nationality": ("nationality",),
    "date_of_birth": ("date of birth",),
    "expiry_date": ("date of expiry", "expiry date"),
    "country_code": ("country code",),
    "sex": ("sex",),
}
REQUIRED = ("surname", "given_names", "date_of_birth", "document_number", "expiry_date", "nationality")
_DIGITISH = str.maketrans({"O": "0", "o": "0", "Q": "0", "D": "0", "I": "1", "l": "1", "i": "1", "|": "1", "!": "1",
                           "T": "7", "Z": "2", "z": "2", "S": "5", "s": "5", "B": "8", "G": "6", "b": "6", "g": "9"})
_LETTERISH = str.maketrans({"0": "O", "1": "I", "5": "S", "8": "B", "6": "G", "2": "Z", "4": "A", "|": "I", "$": "S"})


@dataclass
class Extraction:
    """The fields read from a page, where each came from, and how the two readings compare."""

    values: dict[str, str | date] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # field -> "mrz" | "label"
    mrz_found: bool = False
    mrz_valid: bool = False
    mismatches: list[str] = field(default_factory=list)

    @property
    def missing(self) -> list[str]:
        return [f for f in REQUIRED if f not in self.values]

    def applicant(self) -> Applicant:
        """The applicant; raises ``KeyError`` naming the first missing field."""
        v = self.values
        return Applicant(surname=str(v["surname"]), given_names=str(v["given_names"]),
                         date_of_birth=v["date_of_birth"], document_number=str(v["document_number"]),
                         expiry_date=v["expiry_date"], nationality=str(v["nationality"]),
                         sex=str(v.get("sex", "X")))  # type: ignore[arg-type]


def _similar(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b).ratio()


def _label_of(line: str) -> tuple[str, float] | None:
    """The field whose label this line starts with (fuzzily), and how well it matched."""
    text = re.sub(r"[^a-z ]", "", line.lower()).strip()
    best: tuple[str, float] | None = None
    for name, labels in LABELS.items():
        for label in labels:
            score = _similar(text[: len(label) + 1].strip(), label)
            if score >= 0.75 and (best is None or score > best[1]):
                best = (name, score)
    return best


def _labelled(lines: list[str]) -> dict[str, str]:
    """Each label's value: the next line below it (labels sit above their values on the page)."""
    found: dict[str, tuple[float, str]] = {}
    for i, line in enumerate(lines):
        match = _label_of(line)
        if match is None or i + 1 >= len(lines):
            continue
        name, score = match
        value = lines[i + 1]
        if _label_of(value) is not None:
            continue  # the value was lost; the next line is another label
        if name not in found or score > found[name][0]:
            found[name] = (score, value)
    return {name: value for name, (_, value) in found.items()}


def _year(text: str) -> int | None:
    digits = text.translate(_DIGITISH)
    return int(digits) if re.fullmatch(r"(19|20)\d\d", digits) else None


def parse_date(text: str) -> date | None:
    """A date written ``12 MAR 1985``, ``12.03.1985`` or ``1985-03-12``, OCR confusions repaired."""
    compact = text.strip()
    m = re.search(r"([0-9OoIlQDSZB|]{1,2})\s*([A-Za-z0-9]{3})\s*([0-9OoIlQDSZB|]{4})", compact)
    if m:
        month_text = m.group(2).upper().translate(_LETTERISH)
        month = difflib.get_close_matches(month_text, MONTHS, n=1, cutoff=0.6)
        year, day = _year(m.group(3)), m.group(1).translate(_DIGITISH)
        if month and year and day.isdigit():
            try:
                return date(year, MONTHS.index(month[0]) + 1, int(day))
            except ValueError:
                pass
    digits = compact.translate(_DIGITISH)
    m = re.search(r"(\d{1,2})\s*[./,-]\s*(\d{1,2})\s*[./,-]\s*(\d{4})", digits)
    if m:
        try:
            return date(int(m.group(3)), int(m.group(2)), int(m.group(1)))
        except ValueError:
            pass
    m = re.search(r"(\d{4})\s*[-./]\s*(\d{1,2})\s*[-./]\s*(\d{1,2})", digits)
    if m:
        try:
            return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            pass
    return None


def _name(text: str) -> str:
    letters = re.sub(r"[^A-Z\- ]", "", text.upper().translate(_LETTERISH).replace("-", " "))
    return " ".join(letters.split())


def _document_number(text: str) -> str:
    token = max(re.findall(r"[A-Za-z0-9]{6,12}", text.replace(" ", "")) or [""], key=len)
    if not token:
        return ""
    head = token[:2].upper().translate(_LETTERISH) if token[:2].upper().translate(_LETTERISH).isalpha() else token[:2]
    return (head + token[2:].translate(_DIGITISH)).upper()


def _country(code_line: str | None, name_line: str | None) -> str | None:
    if code_line:
        code = re.sub(r"[^A-Z]", "", code_line.upper().translate(_LETTERISH))[:3]
        if code in COUNTRIES:
            return code
    if name_line:
        names = {v: k for k, v in COUNTRIES.items()}
        close = difflib.get_close_matches(_name(name_line), list(names), n=1, cutoff=0.7)
        if close:
            return names[close[0]]
    return None


def _mrz_date(yymmdd: str, *, future: bool, today: date, hint: date | None) -> date | None:
    if not re.fullmatch(r"\d{6}", yymmdd):
        return None
    yy, mm, dd = int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:])
    if hint is not None and hint.year % 100 == yy:
        century = hint.year - yy
    elif future:
        century = 2000
    else:
        century = 1900 if 2000 + yy > today.year else 2000
    try:
        return date(century + yy, mm, dd)
    except ValueError:
        return None


def extract(text: str, today: date | None = None) -> Extraction:
    """Read the applicant's fields from OCR ``text`` (labels and MRZ combined)."""
    today = today or date.today()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    raw = _labelled(lines)
    label: dict[str, str | date] = {}
    for key in ("surname", "given_names"):
        if key in raw and _name(raw[key]):
            label[key] = _name(raw[key])
    if "document_number" in raw and _document_number(raw["document_number"]):
        label["document_number"] = _document_number(raw["document_number"])
    for key in ("date_of_birth", "expiry_date"):
        parsed = parse_date(raw[key]) if key in raw else None
        if parsed is not None:
            label[key] = parsed
    country = _country(raw.get("country_code"), raw.get("nationality"))
    if country:
        label["nationality"] = country
    sex = re.search(r"\b([FMX])\s*$", raw.get("date_of_birth", "")) or re.match(r"\s*([FMX])\b", raw.get("sex", ""))
    if sex:
        label["sex"] = sex.group(1)

    out = Extraction()
    mrz = parse_mrz(text)
    mrz_values: dict[str, str | date] = {}
    if mrz is not None:
        out.mrz_found, out.mrz_valid = True, mrz.valid
        mrz_values = _mrz_values(mrz, today, label)
    for key in (*REQUIRED, "sex"):
        checked = checked_before = mrz is not None and mrz.checks.get(key, False)
        if checked and key in label and mrz is not None and mrz.confirms(key, _as_mrz(label[key])):
            checked = not _better_printed(key, label[key], mrz_values.get(key))  # one check digit fits both
        if key in mrz_values and (checked or key not in label):
            out.values[key], out.sources[key] = mrz_values[key], "mrz"
        elif key in label:
            out.values[key], out.sources[key] = label[key], "label"
        if key in label and key in mrz_values and _disagree(key, label[key], mrz_values[key], checked_before):
            out.mismatches.append(key)
    return out


def _disagree(key: str, printed: str | date, machine: str | date, checked: bool) -> bool:
    """Whether the print and the MRZ tell different stories (not mere OCR noise in one of them).

    Names carry no check digit: they disagree when clearly different. Checked fields disagree
    when the MRZ's check holds and the print says otherwise; an unchecked MRZ field proves nothing.
    """
    if key in ("surname", "given_names"):
        return _similar(str(printed), str(machine)) < 0.75
    return key != "sex" and checked and printed != machine


def _better_printed(key: str, printed: str | date, machine: str | date | None) -> bool:
    """When one check digit fits both readings (1 in 10 by chance): whether the print is the likelier one.

    Dates are printed unambiguously. Document numbers are letters then digits; the reading that
    keeps that shape wins (the MRZ's OCR turns ``T`` into ``1``, the print's ``1`` into ``l``).
    """
    if isinstance(printed, date):
        return True
    shape = re.compile(r"([A-Z]*)[0-9]+")
    fits_print, fits_mrz = shape.fullmatch(str(printed)), shape.fullmatch(str(machine or ""))
    if fits_print is None:
        return False
    return fits_mrz is None or len(fits_print.group(1)) > len(fits_mrz.group(1))


def _as_mrz(value: str | date) -> str:
    return value.strftime("%y%m%d") if isinstance(value, date) else value.ljust(9, "<")


def _mrz_values(mrz: MrzReading, today: date, label: dict[str, str | date]) -> dict[str, str | date]:
    values: dict[str, str | date] = {}
    if mrz.surname:
        values["surname"] = mrz.surname
    if mrz.given_names:
        values["given_names"] = mrz.given_names
    if mrz.document_number:
        values["document_number"] = mrz.document_number
    if mrz.nationality in COUNTRIES:
        values["nationality"] = mrz.nationality
    if mrz.sex in ("F", "M"):
        values["sex"] = mrz.sex
    dob_hint = label.get("date_of_birth")
    born = _mrz_date(mrz.date_of_birth, future=False, today=today, hint=dob_hint if isinstance(dob_hint, date) else None)
    if born is not None:
        values["date_of_birth"] = born
    exp_hint = label.get("expiry_date")
    expires = _mrz_date(mrz.expiry_date, future=True, today=today, hint=exp_hint if isinstance(exp_hint, date) else None)
    if expires is not None:
        values["expiry_date"] = expires
    return values


class ExtractInput(StepModel):
    ocr_text: str


class ExtractOutput(StepModel):
    """The applicant's fields as state fields; those naming the person are PII (masked where Conveyor keeps copies)."""

    applicant_name: str = pii_field(description="given names and surname")
    given_names: str = pii_field()
    surname: str = pii_field()
    date_of_birth: date = pii_field()
    document_number: str = pii_field()
    expiry_date: date
    nationality: str
    sex: str
    mrz_found: bool
    mrz_valid: bool
    mismatches: list[str]  # fields on which the print and the MRZ disagree
    field_sources: dict[str, str]


class DocumentUnreadableError(RejectedStepError):
    """OCR found the page but not every required field on it: the message lists the missing ones."""


@step("onboarding-extract")
async def extract_applicant(input: ExtractInput, ctx: StepContext) -> ExtractOutput:
    """Parse the OCR text into the applicant's fields (labels and MRZ combined)."""
    found = await asyncio.to_thread(extract, input.ocr_text)
    if found.missing:
        raise DocumentUnreadableError(
            f"could not read {', '.join(found.missing)} from the document: send a sharper, upright scan of the "
            "whole data page (machine-readable zone included)"
        )
    a = found.applicant()
    return ExtractOutput(
        applicant_name=a.full_name, given_names=a.given_names, surname=a.surname, date_of_birth=a.date_of_birth,
        document_number=a.document_number, expiry_date=a.expiry_date, nationality=a.nationality, sex=a.sex,
        mrz_found=found.mrz_found, mrz_valid=found.mrz_valid, mismatches=found.mismatches,
        field_sources=found.sources,
    )
