"""Render a passport data page for an applicant with Pillow: what the tests, the demo and the OCR benchmark read.

The page has a header, a photo box, labelled fields (``Surname``, ``Given names``, ``Nationality``,
``Date of birth``, ``Sex``, ``Date of expiry``, ``Document No.``) and a two-line TD3 machine-readable
zone. :class:`Look` varies what a scanner varies: font, size, slight rotation, blur, sensor noise
and paper tint. ``python -m steps.onboarding.document OUT.png`` writes one (a generator without make).
"""

from __future__ import annotations

import argparse
import io
import random
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

from steps.onboarding.applicant import COUNTRIES, Applicant
from steps.onboarding.mrz import mrz_lines

__all__ = ["FONT_DIRS", "Look", "random_applicant", "random_look", "render", "render_png"]

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))
TEXT_FONTS = ("DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSansCondensed.ttf", "DejaVuSans-Bold.ttf")
MRZ_FONT = "DejaVuSansMono.ttf"
WIDTH, HEIGHT = 1250, 880
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")

GIVEN = ("ANNA", "JANE", "MARIE", "LUCAS", "OMAR", "SOFIA", "HUGO", "ELENA", "NOAH", "IDA", "PAUL", "LENA", "TOMAS",
         "CLARA", "MILO", "GRETA", "JONAS", "NINA", "OSKAR", "ROSA", "FELIX", "VERA", "EMIL", "LOTTE", "KAI", "MAYA")
FAMILY = ("MUELLER", "DUPONT", "ROSSI", "GARCIA", "NOVAK", "JENSEN", "SMITH", "OKAFOR", "TANAKA", "SILVA", "BERG",
          "KOWALSKI", "MARTIN", "HOLM", "FISCHER", "MOREAU", "BIANCHI", "LINDQVIST", "WALSH", "PETERSEN", "VARGA")


@dataclass(frozen=True)
class Look:
    """How one scan looks: the font, its size, rotation (degrees), blur, noise and paper tint."""

    font: str = "DejaVuSans.ttf"
    size: int = 30
    rotation: float = 0.0
    blur: float = 0.0
    noise: float = 0.0  # standard deviation of the sensor noise, in grey levels
    paper: tuple[int, int, int] = (236, 241, 234)
    date_style: str = "passport"  # "passport": 12 MAR 1985; "dotted": 12.03.1985; "iso": 1985-03-12


def random_look(rng: random.Random) -> Look:
    """A plausible scan: any of the text fonts, ±1.5° of skew, a little blur and noise."""
    return Look(
        font=rng.choice(TEXT_FONTS),
        size=rng.randint(27, 34),
        rotation=rng.uniform(-1.5, 1.5),
        blur=rng.choice((0.0, 0.0, 0.4, 0.7)),
        noise=rng.uniform(0.0, 14.0),
        paper=(rng.randint(220, 250), rng.randint(225, 250), rng.randint(215, 245)),
        date_style=rng.choice(("passport", "passport", "dotted", "iso")),
    )


def random_applicant(rng: random.Random, today: date) -> Applicant:
    """A fictional applicant with a valid-looking passport (names from a small list, codes from COUNTRIES)."""
    given = " ".join(rng.sample(GIVEN, rng.choice((1, 1, 2))))
    born = today - timedelta(days=rng.randint(18 * 365 + 10, 80 * 365))
    letters = "".join(rng.choice("ABCDEFGHJKLMNPRSTVWXYZ") for _ in range(2))
    return Applicant(
        surname=rng.choice(FAMILY), given_names=given, date_of_birth=born,
        document_number=letters + "".join(rng.choice("0123456789") for _ in range(7)),
        expiry_date=today + timedelta(days=rng.randint(60, 9 * 365)),
        nationality=rng.choice([c for c in COUNTRIES if c not in ("FRE", "RUR", "LTV")]),
        sex=rng.choice(("F", "M")),
    )


@lru_cache(maxsize=32)
def _font(name: str, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for folder in FONT_DIRS:
        path = folder / name
        if path.exists():
            return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size)  # Pillow's own font when DejaVu (fonts-dejavu-core) is not installed


def _date(d: date, style: str) -> str:
    if style == "dotted":
        return d.strftime("%d.%m.%Y")
    if style == "iso":
        return d.isoformat()
    return f"{d.day:02d} {MONTHS[d.month - 1]} {d.year}"


def render(applicant: Applicant, look: Look | None = None, *, seed: int = 0, mrz_of: Applicant | None = None) -> Image.Image:
    """The data page of ``applicant``'s passport as an RGB image, scanned as ``look`` says.

    ``mrz_of`` writes the machine-readable zone of another applicant: a page whose printed fields
    were altered and whose MRZ was not (what the extractor reports as ``mismatches``).
    """
    look = look or Look()
    page = Image.new("RGB", (WIDTH, HEIGHT), look.paper)
    draw = ImageDraw.Draw(page)
    label_font = _font(look.font.replace("-Bold", ""), max(16, look.size - 12))
    value_font = _font(look.font, look.size)
    draw.rectangle((0, 0, WIDTH, 90), fill=(40, 62, 110))
    country = COUNTRIES.get(applicant.nationality, applicant.nationality)
    draw.text((40, 22), f"{country} - PASSPORT", font=_font(look.font, 38), fill=(245, 245, 245))
    draw.rectangle((40, 130, 330, 500), fill=(205, 210, 215), outline=(120, 120, 120), width=2)
    draw.ellipse((130, 180, 240, 300), fill=(160, 165, 170))
    draw.rounded_rectangle((95, 310, 275, 480), radius=50, fill=(160, 165, 170))
    fields = [
        ("Type / Type", "P", "Country code", applicant.nationality),
        ("Document No.", applicant.document_number, None, None),
        ("Surname", applicant.surname, None, None),
        ("Given names", applicant.given_names, None, None),
        ("Nationality", country, None, None),
        ("Date of birth", _date(applicant.date_of_birth, look.date_style), "Sex", applicant.sex),
        ("Date of expiry", _date(applicant.expiry_date, look.date_style), None, None),
    ]
    y = 120
    ink = (25, 25, 35)
    for label, value, label2, value2 in fields:
        draw.text((380, y), label, font=label_font, fill=(90, 90, 110))
        draw.text((380, y + label_font.size + 4 if hasattr(label_font, "size") else y + 20), value, font=value_font,
                  fill=ink)
        if label2 is not None and value2 is not None:
            draw.text((900, y), label2, font=label_font, fill=(90, 90, 110))
            draw.text((900, y + getattr(label_font, "size", 16) + 4), value2, font=value_font, fill=ink)
        y += getattr(label_font, "size", 16) + look.size + 18
    zone = mrz_of or applicant
    line1, line2 = mrz_lines(
        surname=zone.surname, given_names=zone.given_names, document_number=zone.document_number,
        nationality=zone.nationality, date_of_birth=zone.date_of_birth, sex=zone.sex, expiry_date=zone.expiry_date,
    )
    draw.rectangle((0, HEIGHT - 170, WIDTH, HEIGHT), fill=tuple(min(255, c + 8) for c in look.paper))
    mrz_font = _font(MRZ_FONT, 40)
    draw.text((30, HEIGHT - 150), line1, font=mrz_font, fill=ink)
    draw.text((30, HEIGHT - 85), line2, font=mrz_font, fill=ink)
    return _scan(page, look, seed)


def _scan(page: Image.Image, look: Look, seed: int) -> Image.Image:
    if look.rotation:
        page = page.rotate(look.rotation, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=(250, 250, 250))
    if look.blur:
        page = page.filter(ImageFilter.GaussianBlur(look.blur))
    if look.noise:
        noise = Image.effect_noise(page.size, look.noise)  # grey-level Gaussian noise around 128
        offset = Image.eval(noise, lambda v: max(0, min(255, v)))
        rng = random.Random(seed)
        page = Image.blend(page, Image.merge("RGB", (offset, offset, offset)), 0.12 + 0.04 * rng.random())
    return page


def render_png(applicant: Applicant, look: Look | None = None, *, seed: int = 0, mrz_of: Applicant | None = None) -> bytes:
    """:func:`render` as a greyscale PNG (what ``metadata.document_base64`` carries, base64-encoded).

    Greyscale, as a document scanner sends: a noise-free page is under 100 KB, while a colour page
    with sensor noise is over 1 MB, past the default CONVEYOR_MAX_MESSAGE_BYTES once base64-encoded.
    """
    buffer = io.BytesIO()
    render(applicant, look, seed=seed, mrz_of=mrz_of).convert("L").save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> None:
    """Write a rendered passport: ``python -m steps.onboarding.document applicant.png [--seed N] [--surname X]``."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--surname")
    parser.add_argument("--given-names")
    parser.add_argument("--expired", action="store_true", help="a passport that expired last year")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    today = date.today()
    applicant = random_applicant(rng, today)
    update: dict[str, object] = {}
    if args.surname:
        update["surname"] = args.surname.upper()
    if args.given_names:
        update["given_names"] = args.given_names.upper()
    if args.expired:
        update["expiry_date"] = today - timedelta(days=365)
    applicant = applicant.model_copy(update=update)
    args.out.write_bytes(render_png(applicant, random_look(rng), seed=args.seed))
    print(f"wrote {args.out} ({applicant.nationality}, expires {applicant.expiry_date})")


if __name__ == "__main__":
    main()
