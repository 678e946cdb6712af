"""Extractive answers that name the thing: the API that matches the question first, then its best sentences.

Pure and fast (no model): :func:`read_passages` turns retrieved passages into candidate sentences,
API facts and code lines (cached per passage text); :func:`lexical_scores` ranks sentences by
IDF-weighted word overlap with the question; :func:`compose` builds the answer from sentence
scores (lexical, optionally mixed with cached embedding similarities by the caller):

    `json.loads(s, *, cls=None, ...)`: Deserialize s … to a Python object [1]. The other … [1].

    ```python
    json.loads('["foo", {"bar": ["baz", null, 1.0, 2]}]')
    ```
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from steps.markup import ApiFact, CodeLine, inline, is_prose, parse, sentences

__all__ = ["Candidate", "Reading", "compose", "lexical_scores", "named_api", "read_passages", "tokens"]

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+")
_STOP = frozenset(
    "a an the of to in on for and or is are be do does did how what which why when where who can could should "
    "would will i me my we you your it its this that these those with from by as at into out up if not no "
    "there their them get got use using used way best python py want need make some any all one more than".split()
)
FACT_MATCH_WEIGHT = 0.2  # a name in the question counts, but "list" in "sort a list" must not lead with list()
BODY_WEIGHT = 0.3  # the best sentence of an API's body, against its opening sentence
DIRECTION_WEIGHT = 0.15  # "X into Y": an API whose description converts to Y, not to X (chosen on the tune split)
API_RANK_PRIOR = 0.02  # per rank of the passage an API is documented in (its first one only)
LEAD_RATIO = 0.2  # an API leads when its score is at least this share of the best sentence's (chosen on the tune split)
MAX_SIGNATURE = 70
QUALIFIER_MATCH = 0.5  # "pattern" names ``re.Pattern.flags`` less than "compile" names ``re.compile``
ABBREVIATION_MATCH = 0.5  # "pretty print" spells ``pprint``: a strong hint, weaker than the name written as code
_MODULE_PAGE = re.compile(r"library/([a-z_][\w.]*)\.html")
_THIS_MODULE = re.compile(r"^(This|The) module\b")  # longer signatures are cut at a parameter boundary and end with ", ...)"


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def tokens(text: str) -> list[str]:
    """Lower-case stemmed content words; ``snake_case`` and dotted names also give their parts."""
    out: list[str] = []
    for raw in _WORD.findall(text):
        low = raw.lower()
        parts = [low] + ([p for p in low.split("_") if p] if "_" in low else [])
        for part in parts:
            if part not in _STOP and len(part) > 1:
                out.append(_stem(part))
    return out


@dataclass(frozen=True)
class Candidate:
    """A prose sentence of passage ``passage`` (0-based), in the documented body of ``owner`` if any."""

    passage: int
    text: str
    owner: str | None
    position: int  # index among the passage's sentences: earlier ones introduce the topic


@dataclass
class Reading:
    """What the retrieved passages offer: sentences, API facts and code lines, by passage."""

    candidates: list[Candidate]
    facts: list[list[ApiFact]]
    code: list[list[CodeLine]]
    modules: list[str | None]  # the module a passage documents (``library/timeit.html``: ``timeit``)

    def descriptions(self) -> list[int]:
        """The first sentence of each API's documented body (what it does), in passage order."""
        out: list[int] = []
        seen: set[tuple[int, str]] = set()
        for k, cand in enumerate(self.candidates):
            if cand.owner is not None and (cand.passage, cand.owner) not in seen:
                seen.add((cand.passage, cand.owner))
                out.append(k)
        return out


_CACHE: OrderedDict[str, tuple[list[tuple[str, str | None]], list[ApiFact], list[CodeLine]]] = OrderedDict()
_CACHE_SIZE = 4096


def _read(text: str) -> tuple[list[tuple[str, str | None]], list[ApiFact], list[CodeLine]]:
    hit = _CACHE.get(text)
    if hit is not None:
        _CACHE.move_to_end(text)
        return hit
    parsed = parse(text)
    found: list[tuple[str, str | None]] = []
    for block in parsed.blocks:
        for sentence in sentences(inline(block.text, code=True)):
            if 25 <= len(sentence) <= 400 and is_prose(sentence):
                found.append((sentence, block.owner))
    value = (found, parsed.facts, parsed.code)
    _CACHE[text] = value
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return value


def read_passages(passages: list[dict[str, Any]]) -> Reading:
    candidates: list[Candidate] = []
    facts: list[list[ApiFact]] = []
    code: list[list[CodeLine]] = []
    modules: list[str | None] = []
    for i, passage in enumerate(passages):
        page = _MODULE_PAGE.fullmatch(str(passage.get("source", "")))
        modules.append(page.group(1) if page else None)
        found, passage_facts, passage_code = _read(str(passage.get("text", "")))
        candidates.extend(Candidate(i, s, owner, k) for k, (s, owner) in enumerate(found))
        facts.append(passage_facts)
        code.append(passage_code)
    return Reading(candidates, facts, code, modules)


def lexical_scores(question: str, reading: Reading) -> list[float]:
    """IDF-weighted share of the question's words found in each sentence (0–1), IDF over the candidates."""
    asked = set(tokens(question))
    if not asked or not reading.candidates:
        return [0.0] * len(reading.candidates)
    bags = [set(tokens(c.text)) | set(tokens(c.owner or "")) for c in reading.candidates]
    n = len(bags)
    idf = {w: math.log(1 + n / (1 + sum(w in bag for bag in bags))) + 0.5 for w in asked}
    total = sum(idf.values())
    return [sum(idf[w] for w in asked & bag) / total for bag in bags]


def _fact_match(question_tokens: set[str], question: str, fact: ApiFact) -> float:
    """How directly the question names the API, 0–1.

    1 when it is written as code (``json.loads``, ``most_common``, ``sorted(``); otherwise the share
    of the question's words that the name's parts cover: "sort list descending" is covered more by
    ``list.sort`` (2 of 3 words) than by ``list`` or ``sorted`` (1 of 3).
    """
    low = question.lower()
    short = fact.short.lower()
    if "." in fact.name and re.search(rf"(?<![\w.]){re.escape(fact.name.lower())}(?!\w)", low):
        return 1.0
    if short and re.search(rf"(?<![\w]){re.escape(short)}(?:\(|(?!\w))", low) and ("_" in short or f"{short}(" in low):
        return 1.0
    if not question_tokens:
        return 0.0
    own = {_stem(part) for part in short.split("_") if part}  # what the API is: ``compile`` of ``re.compile``
    qualifier = {_stem(part) for part in re.split(r"[._]", fact.name.lower()) if part} - own  # where it lives
    covered = sum(1.0 if _covers(w, own) else QUALIFIER_MATCH if _covers(w, qualifier) else 0.0 for w in question_tokens)
    share = covered / len(question_tokens)
    return max(ABBREVIATION_MATCH, share) if _abbreviates(short, _WORD.findall(low)) else share


def _covers(word: str, parts: set[str]) -> bool:
    return word in parts or any(_contains(word, part) for part in parts)


def _contains(word: str, part: str) -> bool:
    """A name part inside a longer question word, or the reverse: "precompile" and ``compile``."""
    return min(len(word), len(part)) >= 5 and (part in word or word in part)


def _abbreviates(name: str, words: list[str]) -> bool:
    """Whether ``name`` is made of prefixes of consecutive words: "pretty print" -> ``pprint``."""
    name = name.strip("_")
    if len(name) < 5 or not name.isalpha():
        return False

    def match(rest: str, i: int) -> bool:
        if not rest:
            return True
        if i >= len(words):
            return False
        word = words[i]
        return any(match(rest[n:], i + 1) for n in range(min(len(word), len(rest)), 0, -1) if rest[:n] == word[:n])

    return any(match(name, start) and name not in words for start in range(len(words)))


def named_api(question: str, reading: Reading) -> bool:
    """Whether the question names one of the passages' APIs (``json.loads``, ``most_common``)."""
    words = set(tokens(question))
    return any(_fact_match(words, question, f) >= 0.8 for facts in reading.facts for f in facts)


def _signature(fact: ApiFact) -> str:
    sig = fact.signature.rstrip("\\ ").rstrip(",")
    if sig.count("(") > sig.count(")"):  # the directive went on on the next line
        sig = f"{sig}, ...)" if not sig.endswith("(") else f"{sig}...)"
    if len(sig) <= MAX_SIGNATURE or "(" not in sig:
        return sig
    head, _, params = sig.partition("(")
    kept = ""
    for param in params.rstrip(")").split(","):
        if len(head) + len(kept) + len(param) + 7 > MAX_SIGNATURE:
            break
        kept = f"{kept},{param}" if kept else param
    return f"{head}({kept.strip()}, ...)" if kept else f"{head}(...)"


def _code_line(reading: Reading, passage: int, lead: ApiFact | None, question_tokens: set[str]) -> str | None:
    """One line of code from the passage, preferring one that calls the lead API, then the question's words."""
    best: tuple[float, str] | None = None
    for order, code in enumerate(reading.code[passage]):
        line = code.line.strip()
        if not (3 <= len(line) <= 100) or line.startswith(("#", "$")) or line.endswith(("\\", ",")):
            continue
        if line.count("(") != line.count(")") or line.count("[") != line.count("]") or line.count("{") != line.count("}"):
            continue
        score = 0.0
        if lead is not None and (lead.short + "(" in line or lead.short + "." in line or code.owner == lead.name):
            score += 2.0
        score += len(set(tokens(line)) & question_tokens) * 0.5 + (0.3 if code.doctest else 0.0) - order * 0.01
        if score > 0 and (best is None or score > best[0]):
            best = (score, line)
    return best[1] if best else None


def compose(question: str, reading: Reading, scores: list[float], *, max_sentences: int = 3) -> tuple[str, list[int]]:
    """The answer text and the passages it cites (0-based, in ``[n]`` order); empty when nothing fits.

    ``scores`` are the candidates' relevance (0–1); the caller decides whether the best is relevant at all.
    """
    question_tokens = set(tokens(question))
    ranked = sorted(range(len(reading.candidates)), key=lambda k: -scores[k])
    if not ranked:
        return "", []
    lead = _lead(question, question_tokens, reading, scores, scores[ranked[0]])
    chosen: list[int] = []
    if lead is not None:
        owned = [k for k, c in enumerate(reading.candidates) if c.owner == lead[0].name and c.passage == lead[1]]
        if owned:
            chosen.append(owned[0])  # the sentence that says what the API does
    for k in ranked:
        if len(chosen) >= max_sentences:
            break
        if k not in chosen and scores[k] > 0 and not _near_duplicate(reading.candidates[k].text, [reading.candidates[c].text for c in chosen]):
            chosen.append(k)
    first = chosen[:1]
    rest = sorted(chosen[1:], key=lambda k: (reading.candidates[k].passage, k))  # document order reads better
    order = first + rest
    cited: list[int] = []
    parts: list[str] = []
    for n, k in enumerate(order):
        cand = reading.candidates[k]
        if cand.passage not in cited:
            cited.append(cand.passage)
        tag = f"[{cited.index(cand.passage) + 1}]"
        text = cand.text
        module = reading.modules[cand.passage]
        if module and _THIS_MODULE.match(text):
            text = _THIS_MODULE.sub(f"The `{module}` module", text, count=1)
        if n == 0 and lead is not None:
            sig = _signature(lead[0])
            text = f"`{sig}`: {text}" if cand.owner == lead[0].name else f"Use `{sig}`. {text}"
        parts.append(_tag(text, tag))
    if lead is not None and not order:
        return "", []
    answer = " ".join(parts)
    code_passage = lead[1] if lead is not None else reading.candidates[ranked[0]].passage
    code = _code_line(reading, code_passage, lead[0] if lead else None, question_tokens) if code_passage in cited else None
    if code and code not in answer:
        answer += f"\n\n```python\n{code}\n```"
    return answer, cited


def _lead(question: str, question_tokens: set[str], reading: Reading, scores: list[float],
          best_sentence: float) -> tuple[ApiFact, int] | None:
    """The API to lead with and its passage: named by the question, or saying what was asked, ranked high."""
    ranked = api_values(question, question_tokens, reading, scores)
    if not ranked or ranked[0][0] < best_sentence * LEAD_RATIO:
        return None
    return ranked[0][2], ranked[0][1]


def api_values(question: str, question_tokens: set[str], reading: Reading,
               scores: list[float]) -> list[tuple[float, int, ApiFact]]:
    """Every API of the passages with how well it answers the question, best first: ``(value, passage, fact)``.

    What it does (its opening sentence's score) counts most; then how directly the question names it,
    whether it converts in the direction asked, and the rank of the first passage documenting it.
    """
    out: list[tuple[float, int, ApiFact]] = []
    source, target = _conversion(question)
    first: dict[str, int] = {}  # the best-ranked passage documenting each API
    for p, facts in enumerate(reading.facts):
        for order, fact in enumerate(facts):
            owned = [(scores[k], c.text) for k, c in enumerate(reading.candidates) if c.owner == fact.name and c.passage == p]
            # a long body must not win by its many sentences
            said = (1 - BODY_WEIGHT) * owned[0][0] + BODY_WEIGHT * max(s for s, _ in owned) if owned else 0.0
            value = FACT_MATCH_WEIGHT * _fact_match(question_tokens, question, fact) + said
            if owned and target:
                value += DIRECTION_WEIGHT * _direction(owned[0][1], source, target)
            value -= API_RANK_PRIOR * first.setdefault(fact.name, p) + 0.01 * order
            out.append((value, p, fact))
    out.sort(key=lambda v: -v[0])  # stable: the earlier of equals first
    return out


_INTO = re.compile(r"\b(?:into|to|as)\b(?!.*\b(?:into|to|as)\b)", re.IGNORECASE)
_DESCRIBED_TARGET = re.compile(r"\b(?:into|to|as)\s+(?:an?\s+|the\s+)?((?:[\w`.-]+\s*){1,4})", re.IGNORECASE)


def _conversion(question: str) -> tuple[set[str], set[str]]:
    """For "turn X into Y" questions, the words of X and of Y (both empty otherwise)."""
    match = _INTO.search(question)
    if match is None:
        return set(), set()
    source, target = set(tokens(question[: match.start()])), set(tokens(question[match.end():]))
    return (source, target) if source and target else (set(), set())


def _direction(description: str, source: set[str], target: set[str]) -> float:
    """+1 when what an API's opening sentence converts *to* is what the question wants to get, −1 when it is
    what the question starts from: "python object into json text" is ``dumps`` (… *to* a JSON formatted str),
    not ``load`` (… *to* a Python object)."""
    found = _DESCRIBED_TARGET.search(description)
    if found is None:
        return 0.0
    made = set(tokens(found.group(1)))
    return float(bool(made & target)) - float(bool(made & (source - target)))


def _tag(sentence: str, tag: str) -> str:
    sentence = sentence.rstrip()
    if sentence and sentence[-1] in ".!?:":
        return f"{sentence[:-1]} {tag}{sentence[-1]}" if sentence[-1] != ":" else f"{sentence[:-1]} {tag}."
    return f"{sentence} {tag}."


def _near_duplicate(text: str, others: list[str]) -> bool:
    words = set(tokens(text))
    return any(len(words & set(tokens(o))) >= 0.8 * max(1, len(words)) for o in others)
