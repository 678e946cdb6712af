"""Named sample applicants for tests and the demo: clean, risky (altered page), sanctioned, expired.

Each is a fictional person on a rendered passport (:mod:`steps.onboarding.document`), dated from
``today`` so that they keep their meaning whenever they run:

- ``clean``: an adult from a served country, a valid passport, a consistent page → approved;
- ``risky``: a Freedonian (a high-risk country) whose printed name was altered while the MRZ still
  names someone else → above the risk threshold, a person must approve;
- ``sanctioned``: a name on ``steps/data/sanctions.txt`` → declined;
- ``expired``: a passport that expired last year → declined.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from steps.onboarding.applicant import Applicant
from steps.onboarding.document import Look, render_png

__all__ = ["SAMPLES", "demo_applicants", "sample", "sample_png"]

SAMPLES = ("clean", "risky", "sanctioned", "expired")


def sample(kind: str, today: date | None = None) -> tuple[Applicant, Applicant | None]:
    """The applicant of sample ``kind`` and, for an altered page, whose MRZ it carries."""
    today = today or date.today()
    base = Applicant(surname="LINDQVIST", given_names="ELENA MARIE", date_of_birth=date(today.year - 34, 4, 17),
                     document_number="KP4417820", expiry_date=today + timedelta(days=5 * 365), nationality="SWE",
                     sex="F")
    if kind == "clean":
        return base, None
    if kind == "risky":
        printed = base.model_copy(update={"surname": "HOLM", "given_names": "NINA", "nationality": "FRE",
                                          "document_number": "FR7730114"})
        return printed, base.model_copy(update={"nationality": "FRE", "document_number": "FR7730114"})
    if kind == "sanctioned":
        return base.model_copy(update={"surname": "DRAKOV", "given_names": "VIKTOR", "sex": "M",
                                       "nationality": "DEU", "document_number": "CD0919334"}), None
    if kind == "expired":
        return base.model_copy(update={"expiry_date": today - timedelta(days=400)}), None
    raise ValueError(f"unknown sample {kind!r}: choose one of {', '.join(SAMPLES)}")


def sample_png(kind: str, today: date | None = None, look: Look | None = None) -> bytes:
    """Sample ``kind`` rendered as a PNG passport page."""
    applicant, mrz_of = sample(kind, today)
    return render_png(applicant, look or Look(rotation=0.6, blur=0.4), seed=SAMPLES.index(kind), mrz_of=mrz_of)


def demo_applicants(folder: Path) -> list[tuple[str, Path]]:
    """The demo's two applicants, ``clean`` and ``risky``, written as PNG files into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for kind in ("clean", "risky"):
        path = folder / f"applicant-{kind}.png"
        path.write_bytes(sample_png(kind))
        out.append((kind, path))
    return out
