"""OCR field accuracy on rendered passports: render N pages with varied looks, OCR them, extract, compare.

``python -m steps.onboarding.accuracy [--n 30] [--seed 7]`` prints the per-field table that the
close note quotes; the test suite runs the same measurement with a floor.
"""

from __future__ import annotations

import argparse
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date

from steps.onboarding.document import random_applicant, random_look, render
from steps.onboarding.extract import REQUIRED, extract
from steps.onboarding.ocr import read_text

__all__ = ["Accuracy", "measure"]

FIELDS = (*REQUIRED, "sex")


@dataclass
class Accuracy:
    """Per-field correct counts over ``n`` documents, plus whole-document exactness and OCR time."""

    n: int
    correct: dict[str, int] = field(default_factory=dict)
    all_correct: int = 0
    mrz_valid: int = 0
    ocr_seconds: float = 0.0

    def rate(self, name: str) -> float:
        return self.correct.get(name, 0) / self.n if self.n else 0.0

    def table(self) -> str:
        rows = [f"{'field':<16} {'correct':>8} {'accuracy':>9}"]
        rows += [f"{f:<16} {self.correct.get(f, 0):>4}/{self.n:<3} {self.rate(f):>9.1%}" for f in FIELDS]
        rows.append(f"{'all fields':<16} {self.all_correct:>4}/{self.n:<3} {self.all_correct / self.n:>9.1%}")
        rows.append(f"{'mrz checks hold':<16} {self.mrz_valid:>4}/{self.n:<3} {self.mrz_valid / self.n:>9.1%}")
        rows.append(f"mean OCR time per page: {self.ocr_seconds / self.n:.2f}s")
        return "\n".join(rows)


def _one(seed: int, today: date) -> tuple[dict[str, bool], bool, float]:
    rng = random.Random(seed)
    applicant = random_applicant(rng, today)
    image = render(applicant, random_look(rng), seed=seed)
    started = time.perf_counter()
    text = read_text(image).text
    elapsed = time.perf_counter() - started
    got = extract(text, today)
    truth = applicant.model_dump()
    return {f: got.values.get(f) == truth[f] for f in FIELDS}, got.mrz_valid, elapsed


def measure(n: int = 30, seed: int = 7, today: date = date(2026, 1, 15), threads: int = 2) -> Accuracy:
    """Render ``n`` passports (seeds ``seed``…), OCR and extract each, and count correct fields."""
    result = Accuracy(n=n, correct={f: 0 for f in FIELDS})
    with ThreadPoolExecutor(max_workers=threads) as pool:  # tesseract is a subprocess: threads overlap it
        for fields, mrz_ok, seconds in pool.map(lambda s: _one(s, today), range(seed, seed + n)):
            for name, ok in fields.items():
                result.correct[name] += ok
            result.all_correct += all(fields.values())
            result.mrz_valid += mrz_ok
            result.ocr_seconds += seconds
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="OCR field accuracy on rendered passports")
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    print(measure(args.n, args.seed).table())


if __name__ == "__main__":
    main()
