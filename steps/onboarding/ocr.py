"""OCR of an applicant's document with Tesseract (``pytesseract``; Debian package ``tesseract-ocr``).

The step ``onboarding-ocr`` reads the image from the request's metadata:

- ``metadata.document_path``: a PNG/JPEG file readable by the worker, or
- ``metadata.document_base64``: the image bytes, base64-encoded (what a remote client sends).

A missing, unreadable or undecodable image is a :class:`~steps.base.RejectedStepError` whose
message names the key to set. Tesseract runs in a worker thread, never on the event loop; a
worker without the binary fails with :class:`TesseractMissingError`, which names the package.
The recognised text is personal data (``ocr_text`` is a PII field), its confidence is not.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

from steps.base import FatalStepError, RejectedStepError, StepContext, StepModel
from steps.pii import declare_pii_keys, pii_field
from steps.registry import step

__all__ = ["OcrInput", "OcrOutput", "OcrText", "TesseractMissingError", "document_image", "read_text"]

PATH_KEY = "document_path"
BASE64_KEY = "document_base64"
declare_pii_keys(PATH_KEY, BASE64_KEY)  # an ID document's image (or where it lies) is personal data
MAX_IMAGE_BYTES = 20_000_000
MAX_PIXELS = 40_000_000
MAX_WIDTH = 1000  # measured: 1000 px wide reads as well as 1300 and 25% faster; 850 loses names
TESSERACT_CONFIG = "--oem 1 --psm 4"  # LSTM engine; one column of text of varying sizes
os.environ.setdefault("OMP_THREAD_LIMIT", "1")  # one thread per page: a worker runs several pages at once


class TesseractMissingError(FatalStepError):
    """The ``tesseract`` binary is not installed where the worker runs."""

    def __init__(self) -> None:
        super().__init__(
            "OCR needs the tesseract binary: install the Debian package tesseract-ocr (and tesseract-ocr-eng), "
            "e.g. `sudo apt-get install tesseract-ocr`, or `make deps`; then restart the worker"
        )


class DocumentImageError(RejectedStepError):
    """The request carries no readable document image: the message says which metadata key to set."""


@dataclass
class OcrText:
    """Tesseract's reading of a page: the text, and the mean confidence (0–1) of its words."""

    text: str
    confidence: float
    words: int


def document_image(metadata: dict[str, Any]) -> Image.Image:
    """The image named by ``metadata`` (``document_path`` or ``document_base64``), loaded and checked."""
    raw: bytes
    if isinstance(metadata.get(BASE64_KEY), str) and metadata[BASE64_KEY]:
        encoded = metadata[BASE64_KEY]
        if len(encoded) > MAX_IMAGE_BYTES * 4 // 3 + 4:
            raise DocumentImageError(f"metadata.{BASE64_KEY} is over {MAX_IMAGE_BYTES:,} bytes: send a smaller scan")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise DocumentImageError(
                f"metadata.{BASE64_KEY} is not valid base64: send the image file's bytes base64-encoded"
            ) from None
        where = f"metadata.{BASE64_KEY}"
    elif isinstance(metadata.get(PATH_KEY), str) and metadata[PATH_KEY]:
        path = Path(metadata[PATH_KEY]).expanduser()
        where = f"metadata.{PATH_KEY}"
        try:
            if path.stat().st_size > MAX_IMAGE_BYTES:
                raise DocumentImageError(f"{where} names a file over {MAX_IMAGE_BYTES:,} bytes: send a smaller scan")
            raw = path.read_bytes()
        except OSError as exc:
            raise DocumentImageError(
                f"{where} cannot be read by the worker ({exc.strerror or type(exc).__name__}): give a path the worker "
                f"can read, or send the image itself as metadata.{BASE64_KEY}"
            ) from None
    else:
        raise DocumentImageError(
            f"no document image: set metadata.{PATH_KEY} (a PNG/JPEG path the worker can read) or "
            f"metadata.{BASE64_KEY} (the image bytes, base64)"
        )
    try:
        image = Image.open(io.BytesIO(raw))
        if image.width * image.height > MAX_PIXELS:
            raise DocumentImageError(f"{where}: the image is over {MAX_PIXELS:,} pixels; send a smaller scan")
        image.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        raise DocumentImageError(f"{where} is not an image Pillow can read: send a PNG or JPEG scan") from None
    return image


def read_text(image: Image.Image) -> OcrText:
    """Run Tesseract on ``image`` (blocking: call it in a thread)."""
    import pytesseract

    grey = ImageOps.autocontrast(ImageOps.grayscale(image))
    if grey.width > MAX_WIDTH:  # a phone photo of a page: Tesseract's time grows with pixels, not with text
        grey = grey.resize((MAX_WIDTH, round(grey.height * MAX_WIDTH / grey.width)), Image.Resampling.LANCZOS)
    try:
        data = pytesseract.image_to_data(grey, lang="eng", config=TESSERACT_CONFIG,
                                         output_type=pytesseract.Output.DICT)
    except pytesseract.TesseractNotFoundError:
        raise TesseractMissingError() from None
    lines: dict[tuple[int, int, int], list[str]] = {}
    confidences: list[float] = []
    for i, word in enumerate(data["text"]):
        if not word.strip():
            continue
        key = (data["block_num"][i], data["par_num"][i], data["line_num"][i])
        lines.setdefault(key, []).append(word)
        conf = float(data["conf"][i])
        if conf >= 0:
            confidences.append(conf / 100)
    text = "\n".join(" ".join(words) for _, words in sorted(lines.items()))
    mean = sum(confidences) / len(confidences) if confidences else 0.0
    return OcrText(text=text, confidence=round(mean, 4), words=len(confidences))


class OcrInput(StepModel):
    metadata: dict[str, Any] = {}


class OcrOutput(StepModel):
    ocr_text: str = pii_field(description="the document's text as Tesseract read it")
    ocr_confidence: float
    ocr_words: int


@step("onboarding-ocr")
async def ocr_document(input: OcrInput, ctx: StepContext) -> OcrOutput:
    """Read the applicant's document image (``metadata.document_path`` or ``metadata.document_base64``)."""
    started = time.time()
    image = await asyncio.to_thread(document_image, input.metadata)
    reading = await asyncio.to_thread(read_text, image)
    ctx.record_span("tesseract", started, time.time(), kind="tool", words=reading.words,
                    confidence=reading.confidence, width=image.width, height=image.height)
    if reading.words == 0:
        raise DocumentImageError("the document image holds no readable text: send a sharper, upright scan")
    return OcrOutput(ocr_text=reading.text, ocr_confidence=reading.confidence, ocr_words=reading.words)
