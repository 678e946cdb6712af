from __future__ import annotations

import pytest

from steps.pii import find_pii, iban_ok, luhn_ok, redact


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("mail me at jane.doe+x@example.co.uk please", "email"),
        ("card 4111 1111 1111 1111 expires soon", "credit_card"),
        ("card 4111-1111-1111-1111", "credit_card"),
        ("IBAN DE89 3704 0044 0532 0130 00 for the refund", "iban"),
        ("server at 192.168.1.20 is down", "ipv4"),
        ("v6 host 2001:db8:85a3::8a2e:370:7334 answers", "ipv6"),
        ("SSN 123-45-6789 on file", "us_ssn"),
        ("call +44 20 7946 0958 tomorrow", "phone"),
        ("call (555) 123-4567", "phone"),
    ],
)
def test_detects_each_kind(text: str, kind: str) -> None:
    assert [m.kind for m in find_pii(text)] == [kind]


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112 fails Luhn",  # not a valid card number
        "version 3.11.2 of Python",  # not an IP
        "IBAN DE00 3704 0044 0532 0130 00 has a bad checksum",
        "list[::2] slices every other item",  # '::' is not an IPv6 address here
        "use 999.1.1.1 as an example",
    ],
)
def test_ignores_lookalikes(text: str) -> None:
    assert find_pii(text) == []


def test_redact_masks_every_match_and_keeps_the_rest() -> None:
    text = "I am jane@example.com, card 4111111111111111."
    assert redact(text) == "I am [EMAIL], card [CREDIT_CARD]."


def test_luhn() -> None:
    assert luhn_ok("79927398713")
    assert not luhn_ok("79927398710")


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("write to mary.o'hara@example.ie today", "email", "mary.o'hara@example.ie"),
        ("'pat+billing@eu.mail.example.com' bounced", "email", "pat+billing@eu.mail.example.com"),
        ("Ünïcode: zoë@exämple.de", "email", "zoë@exämple.de"),
        ("ping sam [at] example [dot] org", "email", "sam [at] example [dot] org"),
        ("+49 40 80808080 ist die Zentrale", "phone", "+49 40 80808080"),
        ("ring +447911123456 now", "phone", "+447911123456"),
        ("dial 0044 20 7946 0000", "phone", "0044 20 7946 0000"),
        ("Telefon: 040 80808080", "phone", "040 80808080"),
        ("tel 0161 496 0000 ext 12", "phone", "0161 496 0000 ext 12"),
        ("call +44 20 7946 0958 2 times", "phone", "+44 20 7946 0958"),
        ("SSN 078051120 please", "us_ssn", "078051120"),
        ("it is 078 05 1120", "us_ssn", "078 05 1120"),
        ("IBAN de89 3704 0044 0532 0130 00", "iban", "de89 3704 0044 0532 0130 00"),
        ("host ::ffff:198.51.100.3 again", "ipv6", "::ffff:198.51.100.3"),
    ],
)
def test_masks_the_whole_value(text: str, kind: str, value: str) -> None:
    assert [(m.kind, m.text) for m in find_pii(text)] == [(kind, value)]


def test_no_card_inside_an_iban() -> None:
    # this IBAN's 18 digits after "DE65" are themselves a Luhn-valid number that starts like a Visa card
    iban = "DE65 4000 0566 5566 5556 00"
    assert luhn_ok("400005665566555600")
    assert [(m.kind, m.text) for m in find_pii(f"pay to {iban} now")] == [("iban", iban)]
    # one check digit mistyped: no IBAN, and its digits are not a card either
    assert find_pii("pay to DE66 4000 0566 5566 5556 00 now") == []


def test_bare_nine_digits_need_a_word() -> None:
    assert find_pii("ticket 078051120 closed") == []
    assert [m.kind for m in find_pii("social security 078051120")] == ["us_ssn"]


def test_bare_national_numbers_need_a_word() -> None:
    assert find_pii("order 4155550132 shipped") == []
    assert [m.kind for m in find_pii("my phone number is 4155550132")] == ["phone"]


@pytest.mark.parametrize(
    "text",
    [
        "released 2025-11-25, tagged 2025-11-25T09:30:00Z",
        "meet on 25.11.2025 or 11/25/2025",
        "pip install fastapi==0.115.0 on python 3.11.7",
        "Windows 10.0.22631.4460",
        "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "serve on 127.0.0.1:8000, bind 0.0.0.0:443, ::1 too",
        "netmask 255.255.255.0",
        "epoch 1764063000 or 1764063000000 ms",
        "n = 4155550132 * 2; range(100000000)",
        "ISBN 978-1-4028-9462-6",
        "we served 12 000 000 requests",
        "git push git@github.com:acme/app.git",
        "card 4111 11 1111 1111 11 (not how cards are printed)",
    ],
)
def test_not_pii(text: str) -> None:
    assert find_pii(text) == []


def test_redaction_says_the_type() -> None:
    text = "IBAN GB29 NWBK 6016 1331 9268 19, phone +33 6 12 34 56 78, ssn 078-05-1120, ip 203.0.113.5"
    assert redact(text) == "IBAN [IBAN], phone [PHONE], ssn [US_SSN], ip [IPV4]"


def test_iban_checksum() -> None:
    assert iban_ok("GB29 NWBK 6016 1331 9268 19")
    assert not iban_ok("GB28 NWBK 6016 1331 9268 19")
    assert not iban_ok("GB29 NWBK 6016 1331 9268 1")  # the country's length is checked too


def test_weak_words_admit_only_grouped_numbers() -> None:
    # "call" also names a function call: a bare run of digits after it stays
    assert find_pii("call parse(0612345678) twice") == []
    assert [m.text for m in find_pii("call 06 12 34 56 78 tonight")] == ["06 12 34 56 78"]
    # a strong word (any script) admits a bare number
    for text in ("my phone 0612345678", "text me 0612345678", "电话：13912345678", "телефон 89161234567"):
        assert [m.kind for m in find_pii(text)] == ["phone"], text


@pytest.mark.parametrize(
    ("text", "phones"),
    [
        ("Tel 030 1234567 / 0151 23456789", ["030 1234567", "0151 23456789"]),
        ("tel 020 7946 0958 020 7946 0959", ["020 7946 0958", "020 7946 0959"]),
        ("+44 20 7946 0958 +33 6 12 34 56 78", ["+44 20 7946 0958", "+33 6 12 34 56 78"]),
        ("Phone:+44 20 7946 0958", ["+44 20 7946 0958"]),
        ("mobile:07911123456", ["07911123456"]),
        ("host:5432 at 10:22:33, localhost:8080", []),
    ],
)
def test_every_number_of_a_run_whole(text: str, phones: list[str]) -> None:
    assert [m.text for m in find_pii(text) if m.kind == "phone"] == phones
    assert all(m.kind == "phone" for m in find_pii(text))
