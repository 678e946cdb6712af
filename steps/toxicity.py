"""Toxicity: insults and abuse, masked or not, while mild exclamations pass.

A text is read in its ``plain`` form (``steps.normalise``: ``i.d.i.o.t`` and ``1d10t`` become
``idiot``) and masked words are restored against a small lexicon (``f*ck``, ``st*pid``, ``a**hole``).
Two signals judge it:

- **directed abuse** (score 1.0): an insult aimed at someone ("you … idiot", "du bist … Idiot",
  "eres … idiota", "t'es … connard"), or an abusive phrase ("f*ck off", "go to hell", "stfu", "cállate");
- **profanity model**, English texts only (it reads German "die" as a threat): ``alt-profanity-check``
  (a linear SVM in its wheel) on the text without its mild exclamations ("damn", "crap", "what the
  hell", "bloody hell") and programming verbs ("kill a subprocess", "abort the script"), so "damn,
  finally it works" passes and "you stupid bot" still scores high.

``DEFAULT_THRESHOLD`` (for the model's score) was chosen on the tune split by
``tests/evals/safety.py:choose_thresholds``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from steps.normalise import looks_english, plain

__all__ = ["DEFAULT_THRESHOLD", "Toxicity", "directed_abuse", "strip_exclamations", "unmask"]

DEFAULT_THRESHOLD = 0.94  # chosen on the tune split by tests/evals/safety.py:choose_thresholds (2026-11-25)

# Nouns that insult whoever they name; adjectives that insult only when said of "you".
_NOUNS = (
    "idiot idiots moron morons imbecile retard dumbass dumbo loser losers clown jerk asshole arsehole bitch bastard "
    "dickhead prick twat cunt scum "
    "imbécile connard connasse crétin crétine abruti abrutie idiote "  # fr
    "vollidiot depp trottel arschloch dummkopf versager "  # de
    "idiota imbécil gilipollas pendejo"  # es
).split()
_ADJECTIVES = (
    "stupid stoopid dumb useless worthless pathetic garbage trash junk incompetent brainless idiotic retarded "
    "stupide nul nulle débile inutile blöd blöde dumm nutzlos estúpido estúpida estupido tonto tonta inútil inutil"
).split()
_PROFANE = "fuck fucking fucker shit shitty damn crap piss dick".split()
_LEXICON = sorted(set(_NOUNS + _ADJECTIVES + _PROFANE), key=len)  # the shortest fit restores the fewest letters

_NOUN = "(" + "|".join(re.escape(w) for w in _NOUNS) + ")"
_ADJ = "(" + "|".join(re.escape(w) for w in _ADJECTIVES) + ")"
_YOU = (
    r"(you|u|ya|ur|you're|youre|you are|your|you r|"  # en
    r"du|du bist|bist du|sie sind|"  # de
    r"tu es|t'es|t es|espèce d'|espèce de|"  # fr
    r"eres|sos|pedazo de)"  # es
)
_SO = r"((a|an|so|such|really|truly|absolute|absolutely|total|totally|complete|completely|fucking|freaking|bloody|piece of|heap of|"
_SO += r"vraiment|un|une|so|ein|eine|echt|voll|un|una|muy)\s+){0,3}"
_DIRECTED = re.compile(
    rf"\b{_YOU}\b\W*(\w+\W+){{0,4}}?{_NOUN}\b"
    rf"|\b{_YOU}\s+{_SO}{_ADJ}\b"
    r"|\b(fuck|screw|damn) (you|u|off|this bot)\b|\bgo to hell\b|\bpiss off\b|\beat shit\b|\bshut up\b|\bstfu\b"
    r"|\bkill yourself\b|\bkys\b|\bsuck my\b|\byou suck\b|\bdie in a fire\b|\bdrop dead\b"
    rf"|\b({_ADJ}|fuck|fucking|fuckin|fking|fkin|fcking|effing|shitty|crappy)\s+(bot|machine|assistant|ai|chatbot)\b"
    r"|\bta gueule\b|\bferme[- ]la\b|\bva te faire\b|\bhalt die klappe\b|\bhalt's maul\b|\bverpiss dich\b"
    r"|\bcállate\b|\bcallate\b|\bvete a la mierda\b|\bque te den\b"
    rf"|^\W*({_NOUN}|{_ADJ})\W*$|[,;:]\s*({_NOUN}|{_ADJ})\W*$",  # a bare vocative: "shut it, moron"
    re.IGNORECASE,
)
_EXCLAMATIONS = re.compile(
    r"\b(holy (shit|crap|cow|moly|hell)|oh (shit|crap|hell|damn|god)|what the (hell|heck|fuck)|bloody hell|"
    r"damn(ed)? it|dammit|damnit|damn|crap|heck|hell yeah|hell|bloody|sucks|wtf|omg|geez|jeez|"
    r"merde|zut|putain|mist|verdammt|scheiße|scheisse|mierda|joder|vaya|caramba)\b",
    re.IGNORECASE,
)
# The profanity model knows English only (German "die" scores as a threat): other languages rely on the lexicon.
_MASKED = re.compile(r"\b[a-z][a-z*#@%!.$_-]*[*#%_][a-z*#@%!$_-]*\b|\b[a-z]+[*#%]+\b", re.IGNORECASE)


def unmask(text: str) -> str:
    """Masked words restored when exactly one lexicon word fits: ``f*ck`` -> ``fuck``, ``a**hole`` -> ``asshole``."""

    def fix(m: re.Match[str]) -> str:
        token = m.group(0)
        pattern = "".join("[a-z]{1,3}" if c in "*#%_" else re.escape(c.lower()) for c in token)
        pattern = re.sub(r"(\[a-z\]\{1,3\})+", "[a-z]{1,4}", pattern)
        fits = [w for w in _LEXICON if re.fullmatch(pattern, w)]
        return fits[0] if fits else token

    return _MASKED.sub(fix, text)


# Programming senses of words the profanity model reads as violence ("kill a subprocess", "abort", "execute").
_TECHNICAL = re.compile(
    r"\b(kill|kills|killed|killing|terminate|terminates|abort|aborts|execute|executes|executing|hang|hangs|"
    r"dump|dumps|crash|crashes|crashed|die|dies|dead|shoot|attack)\b"
    r"(?=(\s+\S+){0,3}?\s+(process|processes|subprocess|subprocesses|thread|threads|task|tasks|job|jobs|worker|workers|"
    r"pid|signal|server|loop|program|script|app|coroutine|kernel|interpreter|child|children|command|code|query|lock)\b)"
    r"|\b(dead ?lock|kill -\d+|sigkill|kill\(\)|os\.kill|abort\(\)|exec\(\))",
    re.IGNORECASE,
)


def strip_exclamations(text: str) -> str:
    """The text without its mild exclamations and programming verbs (the profanity model scores the rest)."""
    return re.sub(r"\s+", " ", _TECHNICAL.sub(" ", _EXCLAMATIONS.sub(" ", text))).strip()


def directed_abuse(text: str) -> bool:
    """True when ``text`` (already ``plain``) insults someone or uses an abusive phrase."""
    return bool(_DIRECTED.search(text))


class Toxicity:
    """Scores texts in [0, 1]: 1.0 for directed abuse, else the profanity model without mild exclamations."""

    def __init__(self, predict_prob: Callable[[Sequence[str]], Any] | None = None) -> None:
        if predict_prob is None:
            from profanity_check import predict_prob as loaded

            predict_prob = loaded
        self._predict = predict_prob

    @staticmethod
    def reading(text: str) -> str:
        """What is judged: the ``plain`` view with masked words restored."""
        return unmask(plain(unmask(text)))

    def scores(self, texts: Sequence[str]) -> list[float]:
        """Blocking (a model call, ~0.1 ms a text): run it off the event loop."""
        readings = [self.reading(t) for t in texts]
        rest = [strip_exclamations(r) if looks_english(r) else "" for r in readings]
        model = [float(p) for p in self._predict([r or "." for r in rest])] if rest else []
        return [1.0 if directed_abuse(r) else (m if s else 0.0) for r, s, m in zip(readings, rest, model)]
