"""Words and sentences for the research pipeline: content tokens, a light stemmer, sentence splitting.

One tokenizer for every lexical comparison (BM25 over WordNet glosses and the docs, the fact-check's
token overlap), so a word counts the same wherever it is compared.
"""

from __future__ import annotations

import re

__all__ = [
    "NEGATIONS", "clauses", "content_tokens", "negations", "numbers", "polarity_flips", "sentences", "stem",
    "strip_markers",
]

STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have having he
    her here hers herself him himself his how i if in into is it its itself just let lets like me mean meaning
    means more most my myself of off on once only or other our ours ourselves out over own same she should so
    some such than that the their theirs them themselves then there these they this those through to too under
    until up upon very was we were what when where which while who whom why will with would you your yours
    yourself yourselves""".split()
)
NEGATIONS = frozenset({"not", "no", "never", "nothing", "neither", "nor", "cannot", "without"})  # not "none": Python's None
_IDIOMS = re.compile(r"\b(no matter|whether or not|not only|or not)\b")  # negation words that negate nothing
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w])")
_MARKER = re.compile(r"\s*\[\d+\]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Za-z0-9\"'(`\[])")  # docs sentences may open with `range(5)`
_ABBREVIATION = re.compile(r"\b(e\.g|i\.e|etc|vs|cf|approx|no)\.$", re.I)


def stem(word: str) -> str:
    """A deliberately light suffix stripper: plurals, -ing, -ed, -ly (enough to match "functions" to "function")."""
    if len(word) <= 3 or word.isdigit():
        return word
    for suffix, keep in (("ies", "y"), ("sses", "ss"), ("xes", "x"), ("ches", "ch"), ("shes", "sh")):
        if word.endswith(suffix):
            return word[: -len(suffix)] + keep
    if word.endswith("ing") and len(word) > 5:
        return word[:-3]
    if word.endswith("ed") and len(word) > 4:
        return word[:-2]
    if word.endswith("ly") and len(word) > 5:
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def content_tokens(text: str) -> list[str]:
    """Lower-cased, stemmed words of ``text`` without stopwords; identifiers split at ``_`` and ``.``."""
    out: list[str] = []
    for word in _WORD.findall(text.lower().replace("_", " ")):
        word = word.removesuffix("'s").replace("'", "")
        if word in STOPWORDS or word in NEGATIONS or len(word) < 2:
            continue
        out.append(stem(word))
    return out


def negations(text: str) -> int:
    """How many negation words ``text`` holds (``n't`` counts as one)."""
    words = _WORD.findall(_IDIOMS.sub(" ", text.lower()))
    return sum(1 for w in words if w in NEGATIONS or w.endswith("n't"))


def numbers(text: str) -> set[str]:
    """The numbers written in ``text`` as digits (``3``, ``0.5``), normalised (``3.0`` is ``3``)."""
    out = set()
    for raw in _NUMBER.findall(text):
        value = float(raw)
        out.add(str(int(value)) if value.is_integer() else str(value))
    return out


def strip_markers(text: str) -> str:
    """``text`` without its ``[n]`` citation markers."""
    return _MARKER.sub("", text).strip()


def sentences(text: str) -> list[str]:
    """Split plain prose into sentences (a citation marker stays with the sentence it ends)."""
    text = re.sub(r"\s+", " ", text).strip()
    if not text:
        return []
    # "... itself [1]. Next" : move the sentence end after the markers so they stay with their sentence
    text = re.sub(r"([.!?])((?:\s*\[\d+\])+)", r"\2\1", text)
    out: list[str] = []
    for part in _SENTENCE_END.split(text):
        if out and _ABBREVIATION.search(out[-1]):
            out[-1] = f"{out[-1]} {part}"  # "e.g. sorted()" does not end a sentence
        elif part.strip():
            out.append(part.strip())
    return out


def clauses(sentence: str) -> list[str]:
    """The comma, semicolon and colon separated parts of ``sentence`` that have at least three words."""
    parts = [p.strip(" .") for p in re.split(r"[,;:]\s+", sentence)]
    return [p for p in parts if len(p.split()) >= 3]


def polarity_flips(claim: str, sentence: str) -> list[str]:
    """Claim words whose prefixed opposite (un-, in-, im-, non-, dis-) is what ``sentence`` says instead.

    "changed" against "unchanged", "mutable" against "immutable": opposites that share nearly every
    letter, so neither embeddings nor token overlap see them.
    """
    said = set(content_tokens(sentence))
    flips = []
    for word in set(content_tokens(claim)) - said:
        for prefix in ("un", "in", "im", "non", "dis"):
            if prefix + word in said or (word.startswith(prefix) and word[len(prefix):] in said):
                flips.append(word)
                break
    return sorted(flips)
