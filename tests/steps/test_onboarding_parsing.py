"""Onboarding's pure parts: MRZ check digits, date and field parsing under OCR noise, the rules engine."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from steps.onboarding.applicant import Applicant
from steps.onboarding.extract import extract, parse_date
from steps.onboarding.mrz import check_digit, mrz_lines, parse_mrz
from steps.onboarding.rules import Case, RulesError, load_rules, normalise_name

DATA = Path(__file__).resolve().parents[2] / "steps" / "data"
TODAY = date(2026, 1, 15)
PERSON = Applicant(surname="LINDQVIST", given_names="ELENA MARIE", date_of_birth=date(1990, 4, 17),
                   document_number="KP4417820", expiry_date=date(2030, 6, 1), nationality="SWE", sex="F")


def _lines(a: Applicant = PERSON) -> tuple[str, str]:
    return mrz_lines(surname=a.surname, given_names=a.given_names, document_number=a.document_number,
                     nationality=a.nationality, date_of_birth=a.date_of_birth, sex=a.sex, expiry_date=a.expiry_date)


def test_check_digit_matches_the_icao_specimen() -> None:
    # ICAO 9303 part 4 specimen: document L898902C3 has check digit 6, birth 740812 → 2, expiry 120415 → 9
    assert check_digit("L898902C3") == "6"
    assert check_digit("740812") == "2"
    assert check_digit("120415") == "9"


def test_mrz_lines_are_44_wide_and_read_back() -> None:
    line1, line2 = _lines()
    assert len(line1) == len(line2) == 44
    reading = parse_mrz(f"{line1}\n{line2}")
    assert reading is not None and reading.valid
    assert (reading.surname, reading.given_names, reading.document_number) == ("LINDQVIST", "ELENA MARIE", "KP4417820")
    assert (reading.date_of_birth, reading.expiry_date, reading.nationality) == ("900417", "300601", "SWE")


def test_mrz_survives_ocr_confusions_and_a_wrong_check_digit_is_seen() -> None:
    line1, line2 = _lines()
    noisy1 = line1.replace("<<<<", "cc«<", 1).replace("O", "0")
    noisy2 = "| " + line2.replace("<<<", "<c<", 1)
    reading = parse_mrz(f"{noisy1}\n{noisy2}")
    assert reading is not None and reading.valid and reading.document_number == "KP4417820"
    broken = line2[:19] + str((int(line2[19]) + 1) % 10) + line2[20:]
    reading = parse_mrz(f"{line1}\n{broken}")
    assert reading is not None and reading.checks["date_of_birth"] is False and not reading.valid


@pytest.mark.parametrize("text, expected", [
    ("17 APR 1990", date(1990, 4, 17)),
    ("l7 APR l99O", date(1990, 4, 17)),  # l/1 and O/0
    ("17 AP R 1990", None),
    ("17 APH 1990", date(1990, 4, 17)),  # a fuzzy month
    ("17.04.1990", date(1990, 4, 17)),
    ("1990-04-17", date(1990, 4, 17)),
    ("31.02.1990", None),
    ("no date here", None),
])
def test_dates_are_parsed_through_ocr_noise(text: str, expected: date | None) -> None:
    assert parse_date(text) == expected


def _page(a: Applicant = PERSON, *, mrz: Applicant | None = None, noise: bool = False) -> str:
    line1, line2 = _lines(mrz or a)
    fields = [
        "UTOPIA - PASSPORT", "Type / Type Country code", f"P {a.nationality}",
        "Document No." if not noise else "Docurnent N0.", a.document_number.replace("1", "l") if noise else a.document_number,
        "Surname" if not noise else "Sumame", a.surname, "Given names", a.given_names,
        "Nationality", "SWEDEN", "Date of birth Sex" if not noise else "Date of birtt Sex",
        f"{a.date_of_birth.day:02d} APR {a.date_of_birth.year} {a.sex}", "Date of expiry", "01 JUN 2030",
        line1, line2,
    ]
    return "\n".join(fields)


def test_extract_reads_a_clean_page() -> None:
    got = extract(_page(), TODAY)
    assert got.missing == [] and got.mrz_valid and got.mismatches == []
    assert got.applicant() == PERSON


def test_extract_repairs_noisy_labels_and_values() -> None:
    got = extract(_page(noise=True), TODAY)
    assert got.applicant() == PERSON


def test_extract_without_mrz_uses_the_labels() -> None:
    text = "\n".join(_page().splitlines()[:-2])
    got = extract(text, TODAY)
    assert not got.mrz_found and got.applicant() == PERSON and set(got.sources.values()) == {"label"}


def test_an_altered_page_shows_as_mismatches() -> None:
    printed = PERSON.model_copy(update={"surname": "HOLM", "given_names": "NINA"})
    got = extract(_page(printed, mrz=PERSON), TODAY)
    assert set(got.mismatches) == {"surname", "given_names"}


def test_a_page_missing_fields_says_which() -> None:
    got = extract("PASSPORT\nSurname\nHOLM", TODAY)
    assert "date_of_birth" in got.missing and "surname" not in got.missing


# -- rules ---------------------------------------------------------------------------------------

def _case(**change: object) -> Case:
    base = dict(given_names="ELENA", surname="LINDQVIST", date_of_birth=date(1990, 4, 17), expiry_date=date(2030, 6, 1),
                nationality="SWE", risk_score=0.1, mrz_valid=True)
    base.update(change)
    return Case(**base)  # type: ignore[arg-type]


def test_the_bundled_rules_approve_review_and_decline() -> None:
    rules = load_rules(DATA / "onboarding_rules.yaml")
    assert rules.decide(_case(), TODAY).outcome == "approve"
    assert rules.decide(_case(date_of_birth=date(2010, 1, 1)), TODAY).failed == ["adult"]
    expired = rules.decide(_case(expiry_date=date(2025, 12, 1)), TODAY)
    assert expired.outcome == "decline" and "document-valid" in expired.failed
    soon = rules.decide(_case(expiry_date=date(2026, 2, 1)), TODAY)
    assert (soon.outcome, soon.failed) == ("review", ["document-expires-soon"])
    assert rules.decide(_case(risk_score=0.6), TODAY).outcome == "review"
    assert rules.decide(_case(risk_score=0.99), TODAY).outcome == "decline"
    assert rules.decide(_case(nationality="LTV"), TODAY).outcome == "decline"
    assert rules.decide(_case(nationality="FRE"), TODAY).failed == ["high-risk-country"]
    assert rules.decide(_case(nationality="BRA"), TODAY).failed == ["served-country"]


@pytest.mark.parametrize("given, surname", [("VIKTOR", "DRAKOV"), ("Drakov,", "Viktor"), ("V1KTOR", "DRAK0V"),
                                             ("VIKTOR", "DRAKOW"), ("Mara", "Voss-Ellington")])
def test_sanctions_match_normalised_names(given: str, surname: str) -> None:
    rules = load_rules(DATA / "onboarding_rules.yaml")
    decision = rules.decide(_case(given_names=given, surname=surname), TODAY)
    assert decision.outcome == "decline" and decision.failed == ["sanctions"]
    assert given.upper() not in " ".join(decision.reasons).upper()  # reasons never quote the name


def test_similar_but_different_names_are_not_sanctioned() -> None:
    rules = load_rules(DATA / "onboarding_rules.yaml")
    assert rules.decide(_case(given_names="VIKTORIA", surname="DRAKE"), TODAY).outcome == "approve"
    assert normalise_name("Élena  lindqvist") == "ELENA LINDQVIST"


def test_rules_file_errors_name_the_rule_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "rules.yaml"
    bad.write_text("rules:\n  - {name: adult, check: min_age, years: 18, outcome: decline}\n"
                   "  - {name: risky, check: risk_below, threshold: 2, outcome: review}\n")
    with pytest.raises(RulesError, match=r"rule 1 \('risky'\).*threshold"):
        load_rules(bad)
    bad.write_text("rules:\n  - {name: s, check: not_sanctioned, outcome: decline}\n")
    with pytest.raises(RulesError, match="needs sanctions_list"):
        load_rules(bad)
    bad.write_text("sanctions_list: nowhere.txt\nrules:\n  - {name: s, check: not_sanctioned, outcome: decline}\n")
    with pytest.raises(RulesError, match="nowhere.txt cannot be read"):
        load_rules(bad)
    bad.write_text("rules:\n  - {name: x, check: shoe_size, outcome: decline}\n")
    with pytest.raises(RulesError, match="rule 0"):
        load_rules(bad)
