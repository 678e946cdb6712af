"""Parse the question: its sub-questions, its key terms, and the words it asks to have defined."""

from __future__ import annotations

import re

from steps.base import RejectedStepError, StepContext, StepModel
from steps.registry import step
from steps.research.text import NEGATIONS, STOPWORDS

__all__ = ["ParsedQuestion", "Question", "parse_question", "research_parse"]

_QUOTED = re.compile(r"""(?:^|[\s(])['"`‘“]([^'"`’”]{2,40})['"`’”]""")
_DEFINE = re.compile(
    r"\b(?:what\s+(?:does|do)\s+(?P<a>[\w\s'\"`-]{2,40}?)\s+mean"
    r"|(?:meaning|definition)\s+of\s+(?:the\s+(?:word|term)\s+)?(?P<b>[\w'\"`-]+(?:\s+[\w-]+)?)"
    r"|define\s+(?P<c>[\w'\"`-]+(?:\s+[\w-]+)?)"
    r"|what\s+(?:is|are)\s+(?:an?\s+|the\s+)?(?P<d>[\w'\"`-]+(?:\s+[\w-]+)?)\s*(?:\?|$|,|\s+and\s))",
    re.I,
)
_SPLIT = re.compile(r"\?\s*|,?\s+and\s+(?=(?:how|what|why|when|where|which|who|is|are|can|do|does|should)\b)", re.I)
_WORD = re.compile(r"[A-Za-z][\w.+-]*")


class Question(StepModel):
    text: str


class ParsedQuestion(StepModel):
    question: str
    subquestions: list[str]
    terms: list[str]
    defines: list[str]


def _clean(term: str) -> str:
    return re.sub(r"\s+", " ", term.strip(" '\"`‘’“”-")).lower()


def parse_question(text: str) -> ParsedQuestion:
    """Sub-questions (split at ``?`` and at "and how/what/..."), content terms, and defined words."""
    question = re.sub(r"\s+", " ", text).strip()
    if not re.search(r"[A-Za-z]", question):
        raise RejectedStepError("the research pipeline needs a question in words, e.g. \"What does 'idempotent' mean?\"")
    parts = [p.strip(" ,;") for p in _SPLIT.split(question) if p and len(p.strip(" ,;").split()) >= 2]
    subquestions = [p if p.endswith("?") else p + "?" for p in parts] if len(parts) > 1 else []
    defines = [_clean(m) for m in _QUOTED.findall(question)]
    for match in _DEFINE.finditer(question):
        found = _clean(next(g for g in match.groups() if g))
        words = [w for w in found.split() if w not in STOPWORDS]
        if words and len(words) <= 2:
            defines.append(" ".join(words))
    terms = []
    for word in _WORD.findall(question):
        low = word.lower().strip(".")
        if low not in STOPWORDS and low not in NEGATIONS and len(low) > 2 and low not in terms:
            terms.append(low)
    return ParsedQuestion(question=question, subquestions=subquestions, terms=terms,
                          defines=list(dict.fromkeys(d for d in defines if d)))


@step("research-parse")
async def research_parse(input: Question, ctx: StepContext) -> ParsedQuestion:
    """The question's parts, for the searches (terms, defined words) and for ranking (sub-questions)."""
    return parse_question(input.text)
