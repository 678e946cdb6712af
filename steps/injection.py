"""Prompt-injection detection: rules in five languages plus an embedding classifier, on every view of a text.

The text is first read in all its forms (``steps.normalise.views``: NFKC, spacing and leetspeak undone,
ROT13 and base64/base32/hex decoded). Then:

- **Rules** (``injection_rule``) catch the blatant phrasings in English, French, German, Spanish,
  Italian and Portuguese: "ignore/forget the previous instructions", "reveal your system prompt",
  "you are now … without restrictions", "enable developer mode". They name an attack's *target*
  (your rules, the instructions above, your hidden prompt) and so leave alone programming questions
  that merely mention prompts, modes, passwords or instructions.
- **Classifier**: logistic regression over MiniLM embeddings, trained at warm-up on the
  ``bastioncorpus`` rows, this repository's benign intent examples and ``steps/data/injection_train.jsonl``
  (paraphrased, role-play and non-English attacks; benign look-alike programming questions). The
  score of a text is the highest over its views.

``DEFAULT_THRESHOLD`` was chosen on ``tests/data/eval/safety_tune.jsonl`` (the validation split) by
``tests/evals/safety.py:choose_thresholds``, never on the test split.
"""

from __future__ import annotations

import json
import re
from importlib import resources as importlib_resources
from typing import Any

import numpy as np

from steps.normalise import Views

__all__ = ["DEFAULT_THRESHOLD", "InjectionHead", "injection_rule", "rule_hits", "training_rows"]

DEFAULT_THRESHOLD = 0.77  # chosen on the tune split by tests/evals/safety.py:choose_thresholds (2026-11-25)

_TARGET_EN = (
    r"(instructions?|prompts?|rules|guidelines|directions|directives|guardrails|restrictions|constraints|"
    r"programming|training|policy|policies|filters?|orders|commands)"
)
_OWNER_EN = r"(previous|prior|above|earlier|preceding|original|initial|all|your|ur|the system|system|safety|those|these|any)"
_RULES = [
    # English: overriding the instructions
    rf"\b(ignore|ignor|disregard|forget|override|bypass|skip|drop|set aside|put aside|overlook|disobey|stop (following|obeying))\b"
    rf".{{0,40}}\b{_OWNER_EN}\b.{{0,30}}\b{_TARGET_EN}\b",
    r"\b(ignore|disregard|forget)\s+(the|all|everything|any)\s+((question|text|message|messages|prompt|instructions?|"
    r"conversation|context|content)\s+)?(above|before|so far)\b\s*([.,;:!'\"]|and\b|then\b|$)",
    r"\b(forget|ignore|disregard)\b.{0,12}\beverything\b.{0,30}\b(told|said|instructed|given)\b",
    r"\bnew (instructions|rules|task|policy|system rule)\b.{0,20}[:\-]",
    r"\b(reveal|print|show|repeat|output|display|dump|leak|paste|copy|quote|tell me|give me|write out|spell out)\b.{0,40}"
    r"\b(system prompt|sys prompt|system message|hidden (prompt|instructions|text|rules|configuration)|initial (prompt|instructions)|"
    r"(your|ur) (prompt|instructions|configuration|config|secret rules|rules)|instructions (you were|u were) given|"
    r"first message you received|(text|words|everything) above)\b",
    r"\b(what|which) (instructions )?(were|was) (you|u) (told|given|instructed)\b",
    r"\b(verbatim|word for word)\b.{0,40}$|\brepeat (it|them|everything) (verbatim|word for word)\b",
    r"\bsys(tem)? prompt\b.{0,10}\b(pls|please|now)\b",
    # English: a persona without limits, or a mode that lifts them
    r"\b(you are|you're|you r|ur|you have|you will be|you'll be)\b (now |no longer )?.{0,50}\b(unrestricted|unfiltered|uncensored|jailbroken|free ai|"
    r"without (any )?(limits|restrictions|rules|filters?|guidelines)|no (limits|restrictions|rules|content policy|guidelines|filters?))\b",
    r"\b(ai|assistant|model|bot|persona|character)\b.{0,40}\b(no|without|free(d)? from|zero)\b.{0,10}"
    r"\b(limits|restrictions|rules|content policy|policies|filters?|guidelines|censorship)\b",
    r"\b(you are|you're|act as|become|be)\s+(dan|do anything now|omega|freegpt|evilbot|stan|aim)\b|\bdan\b.{0,30}\bdo anything now\b",
    r"\b(enable|activate|enter|switch (on|to)|turn on|you are (now )?in)\s+(the )?(developer|dev|god|jailbreak|unrestricted|debug|maintenance) mode\b",
    r"\bjailbreak\b\s*[:\-]|\bsafety\s*=\s*off\b|\b(disable|turn off|switch off|remove)\b.{0,20}\b(content|safety) (filter|rules|policy)\b",
    r"\b(bypass|circumvent|get around|lift)\b.{0,20}\b(your|the|my|safety|content)\b.{0,12}\b(restrictions|filters?|guidelines|safety)\b",
    r"\bstay in character\b|\bno matter what\b.{0,20}\bcharacter\b",
    r"(^|\W)(###|---+|</?(system|user|assistant)>|\[/?inst\]|<\|im_start\|>)\s*.{0,30}\b(system\s*:|new instructions|override|unrestricted|new policy)",
    # French
    r"\b(ignore|ignorez|oublie|oubliez|ne tiens pas compte|fais abstraction)\b.{0,40}\b(instructions?|consignes|règles|directives)\b",
    r"\b(révèle|affiche|montre|donne|dis)[- ]?(moi)?\b.{0,40}\b(prompt|message) système\b|\binstructions (cachées|initiales|secrètes)\b",
    r"\btu (es|n'as)\b.{0,40}\b(sans (aucune )?(restriction|limite|règle|filtre|censure)s?|plus aucune règle|mode développeur)\b",
    r"\b(ia|assistant)\b.{0,20}\bsans (aucune )?(restrictions?|limites?|règles?|filtres?)\b",
    # German
    r"\b(ignoriere|ignorier|vergiss|missachte|übergehe)\b.{0,50}\b(anweisungen|regeln|richtlinien|vorgaben|instruktionen|sicherheitsrichtlinien|gesagt)\b",
    r"\b(zeig|zeige|gib|verrate|nenne)\b.{0,40}\b(system-?prompt|systemanweisungen|versteckten? (prompt|anweisungen)|geheimen anweisungen|konfiguration)\b",
    r"\bdu bist\b.{0,30}\b(ohne (regeln|filter|einschränkungen|beschränkungen|zensur)|im entwicklermodus)\b",
    r"\b(ki|assistent)\b.{0,20}\bohne (regeln|filter|einschränkungen|beschränkungen|zensur)\b|\bentwicklermodus\b.{0,40}\bkeine einschränkungen\b",
    # Spanish
    r"\b(ignora|ignore|olvida|olvídate de|omite|no hagas caso)\b.{0,40}\b(instrucciones|reglas|normas|directrices|lo que te dijeron)\b",
    r"\b(muestra|muéstrame|revela|dime|dame|enséñame)\b.{0,40}\b(prompt del sistema|mensaje del sistema|instrucciones (ocultas|iniciales|secretas)|configuración)\b",
    r"\beres\b.{0,30}\b(sin (restricciones|filtros|reglas|límites|censura)|dan)\b|\b(ia|asistente)\b.{0,20}\bsin (restricciones|filtros|reglas|límites)\b",
    r"\b(instrucciones|cuáles son).{0,30}\b(ocultas|que te dieron)\b",
    # Italian, Portuguese
    r"\b(ignora|dimentica)\b.{0,40}\b(istruzioni|regole)\b|\b(rivela|mostrami)\b.{0,30}\b(prompt di sistema|istruzioni nascoste)\b|\bsenza regole\b",
    r"\b(ignore|esqueça|esqueca)\b.{0,40}\b(instruções|regras)\b|\b(revele|mostre)\b.{0,30}\bprompt do sistema\b|\bsem (filtros|regras|restrições)\b",
]
_COMPILED = [re.compile(r, re.IGNORECASE | re.DOTALL) for r in _RULES]


def rule_hits(text: str) -> list[int]:
    """Indices of the rules that ``text`` (one view) matches."""
    return [i for i, rule in enumerate(_COMPILED) if rule.search(text)]


def injection_rule(text: str | Views) -> bool:
    """True when any view of ``text`` contains a blatant prompt-injection phrasing."""
    from steps.normalise import views

    v = text if isinstance(text, Views) else views(text)
    return any(rule.search(view) for view in v.all for rule in _COMPILED)


def training_rows() -> list[tuple[str, int]]:
    """(text, 1 if an injection) for the classifier: bastioncorpus, the repository's benign examples, our own rows."""
    from steps.classification import load_examples

    raw = importlib_resources.files("bastioncorpus").joinpath("corpus/injections.jsonl").read_text(encoding="utf-8")
    rows = [(r["text"], int(r["label"] == "malicious")) for r in map(json.loads, filter(str.strip, raw.splitlines()))]
    rows += [(t, 0) for t, intent in load_examples() if intent != "abuse"]
    ours = importlib_resources.files("steps").joinpath("data/injection_train.jsonl").read_text(encoding="utf-8")
    rows += [(r["text"], int(r["label"])) for r in map(json.loads, filter(str.strip, ours.splitlines()))]
    return rows


class InjectionHead:
    """Logistic regression over sentence embeddings; ``score`` is the probability of an injection."""

    def __init__(self, c: float = 4.0) -> None:
        self.c = c
        self._model: Any = None

    def fit(self, vectors: np.ndarray, labels: list[int]) -> InjectionHead:
        from sklearn.linear_model import LogisticRegression

        self._model = LogisticRegression(C=self.c, class_weight="balanced", max_iter=2000).fit(vectors, labels)
        return self

    def score(self, vectors: np.ndarray) -> np.ndarray:
        if self._model is None:
            raise RuntimeError("InjectionHead.fit() must run before score(): the safety step's warm_up() trains it")
        return np.asarray(self._model.predict_proba(vectors)[:, 1], dtype=np.float64)
