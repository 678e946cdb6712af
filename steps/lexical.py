"""Lexical retrieval for the support pipeline: BM25 over the index's passages, robust to typos.

Dense MiniLM vectors find paraphrases but miss exact names (``check_output``, ``wait_for``) and
are thrown by misspellings; BM25 finds names but not paraphrases. :mod:`steps.retrieval` fuses the
two rankings. The BM25 scorer is the research pipeline's :class:`~steps.research.bm25.BM25Index`
(a sparse term matrix: a query sums the columns of its terms, an inverted-index lookup).

Typos: a :class:`Speller` holds the corpus vocabulary (surface words seen at least twice) and a
character-trigram index over it. A query word that is not in the vocabulary is replaced by the
closest vocabulary word within a small edit distance (the commonest on ties), so ``recursivly``
becomes ``recursively`` for both BM25 and the embedder. Per request the cost is proportional to
the query's words and the vocabulary words sharing its trigrams, never to the corpus.

Both structures are built once per index, off the event loop (about 1.5 s for the 7,245 passages of
the Python docs), and cached in memory for as long as the index lives (:func:`lexical_index`).
"""

from __future__ import annotations

import re
import threading
import weakref
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from steps.research.bm25 import BM25Index

__all__ = ["Correction", "LexicalIndex", "Speller", "edit_distance", "lexical_index", "page_words"]

_WORD = re.compile(r"[a-z][a-z0-9]*")
_QUERY_WORD = re.compile(r"[^\W\d_]+")


class _PassageLike(Protocol):
    source: str
    title: str
    text: str


def page_words(source: str) -> str:
    """The words of a passage's page name (``library/os.path.html`` gives ``os path``): module names for BM25."""
    name = source.rsplit("/", 1)[-1]
    name = name.rsplit(".", 1)[0] if "." in name else name
    return re.sub(r"[._-]+", " ", name)


@dataclass(frozen=True)
class Correction:
    """One replaced query word: ``original`` became ``corrected`` at ``distance`` edits."""

    original: str
    corrected: str
    distance: int


def edit_distance(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment distance (insert, delete, substitute, swap neighbours), capped at ``limit + 1``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return min(previous[-1], limit + 1)


def _grams(word: str) -> set[str]:
    padded = f"^{word}$"
    return {padded[i : i + 3] for i in range(len(padded) - 2)}


class Speller:
    """Vocabulary-based spelling correction: the nearest known word within ``max_edits(word)`` edits.

    Words shorter than ``min_length`` and words that hold digits are never changed (``py3``, ``os``);
    neither is a word the corpus holds (even once, or as the same stem: ``accents`` by ``accent``),
    even if another known word is commoner. A correction is a word seen at least ``min_count`` times.
    """

    def __init__(self, counts: Counter[str], min_count: int = 2, min_length: int = 4, shortlist: int = 60) -> None:
        from steps.research.text import stem  # lazily: steps.research's package imports the steps that import this

        self._stem = stem
        self.counts = {w: c for w, c in counts.items() if c >= min_count}  # the words a typo may become
        self.known = frozenset(counts)  # the words a query word may be: seen once is enough
        self.min_length = min_length
        self.shortlist = shortlist
        grams: defaultdict[str, list[str]] = defaultdict(list)
        for word in self.counts:
            if len(word) >= min_length - 1:
                for gram in _grams(word):
                    grams[gram].append(word)
        self._grams = dict(grams)

    @classmethod
    def from_texts(cls, texts: Iterable[str], **kw: int) -> Speller:
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(_WORD.findall(text.lower().replace("_", " ")))
        return cls(counts, **kw)

    def __contains__(self, word: str) -> bool:
        """Whether ``word`` may be a correction (seen at least ``min_count`` times)."""
        return word in self.counts

    @staticmethod
    def max_edits(word: str) -> int:
        return 1 if len(word) <= 5 else 2

    def correct_word(self, word: str) -> Correction | None:
        """The correction of one lower-case word, or None when it is known, too short or has no close neighbour."""
        if len(word) < self.min_length or not word.isalpha() or not word.isascii():
            return None
        if word in self.known or self._stem(word) in self.known:  # "accents" is known by "accent"
            return None
        limit = self.max_edits(word)
        shared: Counter[str] = Counter()
        for gram in _grams(word):
            shared.update(self._grams.get(gram, ()))
        best: tuple[int, int, str] | None = None  # (distance, -count, word): smallest wins
        for candidate, _ in shared.most_common(self.shortlist):
            distance = edit_distance(word, candidate, limit)
            if distance > limit:
                continue
            key = (distance, -self.counts[candidate], candidate)
            if best is None or key < best:
                best = key
        if best is None:
            return None
        return Correction(original=word, corrected=best[2], distance=best[0])

    def correct(self, text: str) -> tuple[str, list[Correction]]:
        """``text`` with each unknown word replaced by its correction (case of the rest kept), and the corrections."""
        corrections: list[Correction] = []

        def replace(match: re.Match[str]) -> str:
            fixed = self.correct_word(match.group(0).lower())
            if fixed is None:
                return match.group(0)
            corrections.append(fixed)
            return fixed.corrected

        # letter runs only: identifiers such as check_output are looked up part by part, as the vocabulary splits them
        return _QUERY_WORD.sub(replace, text), corrections


class LexicalIndex:
    """BM25 over the passages' page names, titles and texts, plus the speller of their vocabulary."""

    def __init__(self, passages: Sequence[_PassageLike]) -> None:
        # imported here: steps.research's package imports steps.generation, which imports this module's users
        from steps.research.bm25 import BM25Index

        texts = [f"{p.title} {p.text}" for p in passages]
        # the page name counts as words of each of its passages: "tempfile" finds library/tempfile.html
        self.bm25: BM25Index = BM25Index([f"{page_words(p.source)} {t}" for p, t in zip(passages, texts)])
        self.speller = Speller.from_texts(texts)

    def __len__(self) -> int:
        return len(self.bm25)

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """The ``k`` best (passage position, BM25 score) pairs for ``query`` as written (correct it first)."""
        return self.bm25.search(query, k)


_CACHE: weakref.WeakKeyDictionary[object, LexicalIndex] = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def lexical_index(index: object) -> LexicalIndex:
    """The :class:`LexicalIndex` of a vector index's ``passages``, built on first call and kept while the index lives.

    Blocking (about 1.5 s on the Python docs the first time): call it with ``asyncio.to_thread``.
    """
    with _CACHE_LOCK:
        found = _CACHE.get(index)
        if found is None:
            found = LexicalIndex(index.passages)  # type: ignore[attr-defined]
            _CACHE[index] = found
        return found
