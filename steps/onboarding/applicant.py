"""The applicant as read from an identity document, and the countries the documents may name.

Fields holding personal data are declared with :func:`steps.pii.pii_field`, so the runtime masks
them wherever it keeps a copy (request-state summaries, spans, dead letters, logs) while the
envelope on the step topics still carries the real values the later steps need.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from steps.base import StepModel
from steps.pii import pii_field

__all__ = ["COUNTRIES", "Applicant", "age_on"]

# ICAO 9303 three-letter codes. Most are real; UTO is ICAO's own specimen state, and Freedonia,
# Latveria and Ruritania are fictional (the rules file treats them as high-risk or blocked).
COUNTRIES: dict[str, str] = {
    "AUS": "AUSTRALIA", "AUT": "AUSTRIA", "BEL": "BELGIUM", "CAN": "CANADA", "DEU": "GERMANY", "DNK": "DENMARK",
    "ESP": "SPAIN", "FIN": "FINLAND", "FRA": "FRANCE", "GBR": "UNITED KINGDOM", "IRL": "IRELAND", "ITA": "ITALY",
    "NLD": "NETHERLANDS", "NOR": "NORWAY", "NZL": "NEW ZEALAND", "POL": "POLAND", "PRT": "PORTUGAL",
    "SWE": "SWEDEN", "USA": "UNITED STATES", "UTO": "UTOPIA",
    "FRE": "FREEDONIA", "RUR": "RURITANIA", "LTV": "LATVERIA",
}


class Applicant(StepModel):
    """One applicant's identity fields, normalised: names upper-case, dates as dates, codes ICAO."""

    surname: str = pii_field(description="family name, upper-case")
    given_names: str = pii_field(description="given names, upper-case, space-separated")
    date_of_birth: date = pii_field()
    document_number: str = pii_field(description="letters and digits only")
    expiry_date: date
    nationality: str  # ICAO three-letter code
    sex: Literal["F", "M", "X"] = "X"

    @property
    def full_name(self) -> str:
        return f"{self.given_names} {self.surname}".strip()


def age_on(born: date, today: date) -> int:
    """Whole years between ``born`` and ``today``."""
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))
