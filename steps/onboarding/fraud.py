"""Fraud risk of an application: a scikit-learn model trained on synthetic applications.

The generator draws applications with the signals a real onboarding desk sees: the applicant's
age, how soon the document expires, whether its MRZ check digits hold and agree with the
printed fields, the OCR confidence of the scan, the country's risk tier, a disposable e-mail
domain, how many applications came from the same device in 24 hours, and an IP country that is
not the nationality. The label comes from a hidden, noisy rule over those signals (the model
never sees the rule), with a fixed seed. A gradient-boosted tree model is trained on 80% and
scored on the held-out 20%: accuracy and ROC AUC are logged at training and kept with the model.

"Trained at build time" means once, when first needed: the fitted model is cached as
``~/.cache/conveyor/fraud-<version>-sklearn<version>.pkl`` (``cache_dir`` overrides the folder)
and loaded from there afterwards. ``python -m steps.onboarding.fraud`` trains (or loads) it and
prints the held-out metrics.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import pickle
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from steps.base import StepContext, StepModel
from steps.onboarding.applicant import age_on
from steps.registry import step

__all__ = ["FEATURES", "FraudInput", "FraudModel", "FraudOutput", "FraudScore", "signals_of", "Signals", "default_cache_dir", "load_or_train", "synthetic_applications", "train"]

log = logging.getLogger(__name__)

VERSION = 1
SEED = 20260115
FEATURES = ("age", "days_to_expiry", "mrz_valid", "mismatches", "ocr_confidence", "country_risk",
            "disposable_email", "applications_24h", "ip_country_mismatch")
HIGH_RISK_COUNTRIES = frozenset({"FRE", "RUR", "LTV"})  # fictional states, see applicant.COUNTRIES
DISPOSABLE_DOMAINS = frozenset({"mailinator.com", "10minutemail.com", "guerrillamail.com", "trashmail.com",
                                "yopmail.com", "tempmail.dev", "throwaway.email"})


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "conveyor"


@dataclass(frozen=True)
class Signals:
    """One application's fraud signals, as the model reads them."""

    age: float
    days_to_expiry: float
    mrz_valid: bool
    mismatches: int
    ocr_confidence: float
    country_risk: int  # 0 ordinary, 1 high-risk
    disposable_email: bool
    applications_24h: int
    ip_country_mismatch: bool

    def vector(self) -> list[float]:
        return [float(getattr(self, name)) for name in FEATURES]

    def factors(self) -> list[str]:
        """The signals present, in words (what a reviewer reads next to the score)."""
        found = []
        if self.mismatches:
            found.append(f"printed fields disagree with the MRZ ({self.mismatches})")
        if not self.mrz_valid:
            found.append("MRZ check digits do not hold")
        if self.ocr_confidence < 0.7:
            found.append(f"low scan quality ({self.ocr_confidence:.2f})")
        if self.country_risk:
            found.append("high-risk country")
        if self.disposable_email:
            found.append("disposable e-mail domain")
        if self.applications_24h >= 3:
            found.append(f"{self.applications_24h} applications from this device in 24 h")
        if self.ip_country_mismatch:
            found.append("IP country differs from nationality")
        if self.days_to_expiry < 90:
            found.append("document expires within 90 days")
        if self.age < 21:
            found.append("applicant under 21")
        return found


def synthetic_applications(n: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """``n`` applications (features in :data:`FEATURES` order) and their fraud labels, from a hidden noisy rule."""
    rng = np.random.default_rng(seed)
    fraudster = rng.random(n) < 0.12  # who is trying it on: their signals lean riskier, none gives them away
    age = np.where(fraudster, rng.normal(31, 10, n), rng.normal(42, 14, n)).clip(16, 95)
    days = np.where(fraudster, rng.exponential(500, n), rng.uniform(0, 3650, n)) - 30
    mrz_valid = rng.random(n) > np.where(fraudster, 0.35, 0.12)
    mismatches = rng.poisson(np.where(fraudster, 0.9, 0.08))
    ocr = np.where(fraudster, rng.beta(6, 2.5, n), rng.beta(9, 1.3, n))
    country = (rng.random(n) < np.where(fraudster, 0.22, 0.04)).astype(int)
    disposable = rng.random(n) < np.where(fraudster, 0.4, 0.05)
    velocity = rng.poisson(np.where(fraudster, 2.5, 0.3))
    ip_mismatch = rng.random(n) < np.where(fraudster, 0.5, 0.15)
    logit = (-3.0 + 1.6 * mismatches + 0.9 * ~mrz_valid + 2.5 * (0.85 - ocr).clip(0) * 4 + 1.3 * country
             + 1.4 * disposable + 0.45 * np.minimum(velocity, 8) + 0.7 * ip_mismatch + 0.8 * (days < 90)
             + 0.7 * (age < 21) + 1.2 * fraudster + rng.normal(0, 0.8, n))
    label = rng.random(n) < 1 / (1 + np.exp(-logit))
    x = np.column_stack([age, days, mrz_valid, mismatches, ocr, country, disposable, velocity, ip_mismatch])
    return x.astype(float), label.astype(int)


@dataclass
class FraudModel:
    """A fitted classifier with the held-out metrics it was scored with."""

    classifier: object
    accuracy: float
    auc: float
    base_rate: float  # share of fraud in the held-out set (the accuracy of always saying "fine" is 1 - this)
    n_train: int
    n_test: int
    train_seconds: float

    def score(self, signals: Signals) -> float:
        """Probability that the application is fraudulent (0–1)."""
        proba = self.classifier.predict_proba(np.array([signals.vector()]))  # type: ignore[attr-defined]
        return float(proba[0, 1])

    def report(self) -> str:
        return (f"fraud model v{VERSION}: held-out accuracy {self.accuracy:.3f} (always-legit baseline "
                f"{1 - self.base_rate:.3f}), ROC AUC {self.auc:.3f}; {self.n_train} train / {self.n_test} test "
                f"applications, trained in {self.train_seconds:.2f}s")


def train(n: int = 20_000, seed: int = SEED) -> FraudModel:
    """Generate ``n`` applications, train on 80%, score on the held-out 20% (blocking: call in a thread)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import accuracy_score, roc_auc_score
    from sklearn.model_selection import train_test_split

    started = time.perf_counter()
    x, y = synthetic_applications(n, seed)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)
    classifier = HistGradientBoostingClassifier(max_iter=150, learning_rate=0.08, max_depth=4, random_state=seed)
    classifier.fit(x_train, y_train)
    proba = classifier.predict_proba(x_test)[:, 1]
    model = FraudModel(
        classifier=classifier, accuracy=float(accuracy_score(y_test, proba >= 0.5)),
        auc=float(roc_auc_score(y_test, proba)), base_rate=float(y_test.mean()), n_train=len(y_train),
        n_test=len(y_test), train_seconds=time.perf_counter() - started,
    )
    log.info("%s", model.report())
    return model


def cache_path(cache_dir: Path) -> Path:
    import sklearn

    return cache_dir / f"fraud-v{VERSION}-sklearn{sklearn.__version__}.pkl"


def load_or_train(cache_dir: Path | None = None) -> FraudModel:
    """The cached model, or a freshly trained one written to the cache (blocking: call in a thread)."""
    path = cache_path(cache_dir or default_cache_dir())
    if path.exists():
        try:
            with path.open("rb") as f:
                model = pickle.load(f)  # our own cache file, written below; never a downloaded one
            if isinstance(model, FraudModel):
                return model
        except Exception as exc:  # noqa: BLE001 - a truncated or stale cache is retrained, not fatal
            log.warning("fraud model cache %s unreadable (%s): retraining", path, type(exc).__name__)
    model = train()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as f:
        pickle.dump(model, f)
    tmp.replace(path)  # atomic: two workers training at once both end with a whole file
    return model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="train (or load) the fraud model and print its held-out metrics")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--retrain", action="store_true", help="train again even when a cached model exists")
    args = parser.parse_args(argv)
    model = train() if args.retrain else load_or_train(args.cache_dir)
    print(model.report())


if __name__ == "__main__":
    main()


class FraudInput(StepModel):
    date_of_birth: date
    expiry_date: date
    nationality: str
    mrz_valid: bool
    mismatches: list[str] = []
    ocr_confidence: float = 1.0
    metadata: dict[str, Any] = {}


class FraudOutput(StepModel):
    risk_score: float
    risk_factors: list[str]


def signals_of(input: FraudInput, today: date) -> Signals:
    """The model's signals from the extracted fields and the request metadata.

    Metadata keys read (all optional): ``email`` (only its domain is used), ``applications_24h``
    (applications from the same device in the last day), ``ip_country`` (ICAO/ISO alpha-3).
    """
    meta = input.metadata
    email = meta.get("email") if isinstance(meta.get("email"), str) else ""
    domain = email.rsplit("@", 1)[-1].lower() if "@" in email else ""
    try:
        velocity = max(0, int(meta.get("applications_24h", 0)))
    except (TypeError, ValueError):
        velocity = 0
    ip_country = meta.get("ip_country")
    return Signals(
        age=age_on(input.date_of_birth, today), days_to_expiry=(input.expiry_date - today).days,
        mrz_valid=input.mrz_valid, mismatches=len(input.mismatches), ocr_confidence=input.ocr_confidence,
        country_risk=int(input.nationality in HIGH_RISK_COUNTRIES), disposable_email=domain in DISPOSABLE_DOMAINS,
        applications_24h=velocity,
        ip_country_mismatch=isinstance(ip_country, str) and bool(ip_country) and ip_country.upper() != input.nationality,
    )


@step("onboarding-fraud")
class FraudScore:
    """Scores an application with the cached fraud model (trained on first use; see the module docstring)."""

    def __init__(self, cache_dir: str | None = None) -> None:
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        self.model: FraudModel | None = None

    async def warm_up(self, deps: Any) -> None:
        self.model = await asyncio.to_thread(load_or_train, self.cache_dir)
        log.info("%s", self.model.report())

    async def run(self, input: FraudInput, ctx: StepContext) -> FraudOutput:
        if self.model is None:  # run without the runtime's warm-up (a direct call)
            await self.warm_up(None)
        assert self.model is not None
        started = time.time()
        signals = signals_of(input, date.today())
        score = await asyncio.to_thread(self.model.score, signals)
        ctx.record_span("fraud-model", started, time.time(), kind="tool", model=f"fraud-v{VERSION}",
                        risk_score=round(score, 4))
        return FraudOutput(risk_score=round(score, 4), risk_factors=signals.factors())
