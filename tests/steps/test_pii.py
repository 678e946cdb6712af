from __future__ import annotations

import pytest

from steps.pii import find_pii, luhn_ok, redact


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
