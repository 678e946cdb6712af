"""A declarative rules engine for onboarding decisions, read from YAML (``steps/data/onboarding_rules.yaml``).

Each rule names a ``check``, its parameters and the ``outcome`` when the applicant fails it
(``review`` or ``decline``). The decision is the most severe outcome among the failed rules
(``decline`` > ``review`` > ``approve``), and every failed rule gives a reason. Checks:

==================  ===========================================================================
``min_age``         ``years``: the applicant is at least this old today
``not_expired``     ``min_days``: the document is valid for at least this many more days
``not_sanctioned``  ``similarity``: the normalised name matches no line of the sanctions list
``country_in``      ``countries``: the nationality is one of these
``country_not_in``  ``countries``: the nationality is none of these
``risk_below``      ``threshold``: the fraud model's score is below this
``mrz_valid``       the document's MRZ check digits hold
==================  ===========================================================================

``sanctions_list`` is a text file (one name a line, ``#`` comments) relative to the rules file.
Names are compared after normalisation (accents stripped, OCR digit confusions mapped to letters,
tokens sorted), so ``Drakov, Viktor`` matches ``VIKTOR DRAKOV`` and ``V1KTOR DRAK0V``. Reasons
never quote the applicant's name or numbers: they end up in results and logs.
"""

from __future__ import annotations

import asyncio
import difflib
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from steps.base import StepContext, StepModel
from steps.onboarding.applicant import age_on
from steps.registry import step

__all__ = ["Case", "Decide", "DecideInput", "DecideOutput", "Decision", "RuleSet", "RulesError", "load_rules",
           "normalise_name"]

Outcome = Literal["review", "decline"]
SEVERITY = {"approve": 0, "review": 1, "decline": 2}
_OCR_LETTERS = str.maketrans({"0": "O", "1": "I", "5": "S", "8": "B", "6": "G", "2": "Z", "4": "A", "3": "E"})


class RulesError(ValueError):
    """The rules file is missing or invalid: the message names the file, the rule and the field to fix."""


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    outcome: Outcome
    reason: str | None = None  # what to say when it fails; a default per check otherwise


class MinAge(_Rule):
    check: Literal["min_age"]
    years: int = Field(ge=0, le=130)


class NotExpired(_Rule):
    check: Literal["not_expired"]
    min_days: int = 0


class NotSanctioned(_Rule):
    check: Literal["not_sanctioned"]
    similarity: float = Field(default=0.9, gt=0.5, le=1.0)


class CountryIn(_Rule):
    check: Literal["country_in"]
    countries: list[str] = Field(min_length=1)


class CountryNotIn(_Rule):
    check: Literal["country_not_in"]
    countries: list[str] = Field(min_length=1)


class RiskBelow(_Rule):
    check: Literal["risk_below"]
    threshold: float = Field(gt=0.0, le=1.0)


class MrzValid(_Rule):
    check: Literal["mrz_valid"]


Rule = Annotated[Union[MinAge, NotExpired, NotSanctioned, CountryIn, CountryNotIn, RiskBelow, MrzValid],
                 Field(discriminator="check")]


class _RulesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: Literal[1] = 1
    sanctions_list: str | None = None
    rules: list[Rule] = Field(min_length=1)


class Case(StepModel):
    """What the rules look at (no raw image, no e-mail); also the decide step's input, read from the state."""

    given_names: str
    surname: str
    date_of_birth: date
    expiry_date: date
    nationality: str
    risk_score: float
    mrz_valid: bool = True


@dataclass
class Decision:
    outcome: Literal["approve", "review", "decline"]
    reasons: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def normalise_name(name: str) -> str:
    """Upper-case letters only, accents stripped, OCR digits read as letters, tokens sorted."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii").upper()
    tokens = re.sub(r"[^A-Z ]", " ", plain.translate(_OCR_LETTERS)).split()
    return " ".join(sorted(tokens))


@dataclass
class RuleSet:
    """The rules of one file and the sanctions list it names; :meth:`decide` applies them."""

    rules: list[Rule]  # type: ignore[valid-type]
    sanctioned: list[str] = field(default_factory=list)  # normalised names
    source: str = "<rules>"

    def sanctions_hit(self, name: str, similarity: float) -> bool:
        probe = normalise_name(name)
        if not probe:
            return False
        return any(probe == s or difflib.SequenceMatcher(None, probe, s).ratio() >= similarity for s in self.sanctioned)

    def decide(self, case: Case, today: date | None = None) -> Decision:
        today = today or date.today()
        decision = Decision("approve")
        for rule in self.rules:
            failure = self._failure(rule, case, today)
            if failure is None:
                continue
            decision.failed.append(rule.name)
            decision.reasons.append(f"{rule.name}: {rule.reason or failure}")
            if SEVERITY[rule.outcome] > SEVERITY[decision.outcome]:
                decision.outcome = rule.outcome
        return decision

    def _failure(self, rule: Rule, case: Case, today: date) -> str | None:  # type: ignore[valid-type]
        if isinstance(rule, MinAge):
            return None if age_on(case.date_of_birth, today) >= rule.years else f"under {rule.years}"
        if isinstance(rule, NotExpired):
            left = (case.expiry_date - today).days
            if left >= rule.min_days:
                return None
            return "document expired" if left < 0 else f"document valid for {left} more days (< {rule.min_days})"
        if isinstance(rule, NotSanctioned):
            hit = self.sanctions_hit(f"{case.given_names} {case.surname}", rule.similarity)
            return "name matches the sanctions list" if hit else None
        if isinstance(rule, CountryIn):
            return None if case.nationality in rule.countries else f"nationality {case.nationality} not served"
        if isinstance(rule, CountryNotIn):
            return f"nationality {case.nationality} is listed" if case.nationality in rule.countries else None
        if isinstance(rule, RiskBelow):
            if case.risk_score < rule.threshold:
                return None
            return f"fraud risk {case.risk_score:.2f} >= {rule.threshold:.2f}"
        if isinstance(rule, MrzValid):
            return None if case.mrz_valid else "MRZ check digits do not hold"
        raise RulesError(f"{self.source}: rule {rule.name!r} has no evaluator")  # unreachable: the union is closed


def _read_sanctions(path: Path) -> list[str]:
    names = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(normalise_name(line))
    return names


def load_rules(path: Path) -> RuleSet:
    """Read and validate a rules file and its sanctions list; :class:`RulesError` names what to fix."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RulesError(f"{path}: cannot read the rules file ({exc.strerror}); set the node's config rules_path") from None
    except yaml.YAMLError as exc:
        raise RulesError(f"{path}: not valid YAML ({exc})") from None
    try:
        parsed = _RulesFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = list(first["loc"])
        where = ".".join(str(p) for p in loc)
        if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int) and isinstance(data, dict):
            rules = data.get("rules") or []
            name = rules[loc[1]].get("name") if loc[1] < len(rules) and isinstance(rules[loc[1]], dict) else None
            where = f"rule {loc[1]}" + (f" ({name!r})" if name else "") + ": " + ".".join(str(p) for p in loc[2:])
        raise RulesError(f"{path}: {where}: {first['msg']}") from None
    sanctioned: list[str] = []
    if parsed.sanctions_list:
        list_path = (path.parent / parsed.sanctions_list).resolve()
        try:
            sanctioned = _read_sanctions(list_path)
        except OSError as exc:
            raise RulesError(f"{path}: sanctions_list {list_path} cannot be read ({exc.strerror}): fix the path "
                             "(relative to the rules file)") from None
    if any(isinstance(r, NotSanctioned) for r in parsed.rules) and not sanctioned:
        raise RulesError(f"{path}: a not_sanctioned rule needs sanctions_list: name a non-empty list file")
    return RuleSet(rules=list(parsed.rules), sanctioned=sanctioned, source=str(path))


DEFAULT_RULES = Path(__file__).resolve().parent.parent / "data" / "onboarding_rules.yaml"


class DecideInput(Case):
    """The decide step's input: the case, as the earlier steps left it in the state."""


class DecideOutput(StepModel):
    route: Literal["approve", "review", "decline"]
    decision: Literal["approve", "review", "decline"]
    reasons: str  # "rule: why; rule: why", or "all rules passed" (the approval summary quotes it)
    failed_rules: list[str]


@step("onboarding-decide")
class Decide:
    """Applies the rules file (``rules_path``, default ``steps/data/onboarding_rules.yaml``) to the applicant."""

    def __init__(self, rules_path: str | None = None) -> None:
        self.path = Path(rules_path).expanduser() if rules_path else DEFAULT_RULES
        self.rules: RuleSet | None = None

    async def warm_up(self, deps: Any) -> None:
        self.rules = await asyncio.to_thread(load_rules, self.path)

    async def run(self, input: DecideInput, ctx: StepContext) -> DecideOutput:
        if self.rules is None:
            await self.warm_up(None)
        assert self.rules is not None
        decision = self.rules.decide(input)
        return DecideOutput(route=decision.outcome, decision=decision.outcome,
                            reasons="; ".join(decision.reasons) or "all rules passed", failed_rules=decision.failed)
