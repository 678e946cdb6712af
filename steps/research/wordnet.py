"""WordNet as a second, independent source: Debian's ``wordnet-base`` data files, searched with BM25.

Reads ``data.{noun,verb,adj,adv}`` (one synset a line: ``offset lex_filenum ss_type w_cnt word lex_id
... | gloss``) and, when present, ``index.*`` for the sense numbers that give a synset its usual name
(``idempotent.s.01``, as NLTK spells it). The index is built once per folder, off the event loop, and
kept in memory: about 2 s and 120 MB for WordNet 3.0's 117,659 synsets on this machine.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

from steps.base import FatalStepError
from steps.research.bm25 import BM25Index, top

__all__ = ["WORDNET_DIR", "Synset", "WordNetIndex", "WordNetMissingError", "load_wordnet", "read_synsets"]

WORDNET_DIR = Path("/usr/share/wordnet")
POS_FILES = ("noun", "verb", "adj", "adv")
POS_NAMES = {"n": "noun", "v": "verb", "a": "adjective", "s": "adjective", "r": "adverb"}
_INDEX_POS = {"noun": "n", "verb": "v", "adj": "a", "adv": "r"}
_EXAMPLE = re.compile(r'"([^"]+)"')

_cache: dict[Path, WordNetIndex] = {}
_lock = threading.Lock()


class WordNetMissingError(FatalStepError):
    """The WordNet data files are not where the wordnet source looks for them."""

    def __init__(self, root: Path) -> None:
        super().__init__(
            f"WordNet is not installed at {root} (no data.noun): install Debian's wordnet-base "
            "(`apt-get install wordnet-base`), or set the wordnet-search node's config `root` to a folder "
            "holding data.noun, data.verb, data.adj and data.adv"
        )
        self.root = root


@dataclass(frozen=True)
class Synset:
    """One WordNet sense: its name (``lemma.pos.NN``), lemmas, definition and examples."""

    name: str
    pos: str
    lemmas: tuple[str, ...]
    definition: str
    examples: tuple[str, ...]
    senses: tuple[int, ...] = ()  # each lemma's sense number for this synset (1: its most common sense)

    @property
    def source(self) -> str:
        return f"wordnet:{self.name}"

    @property
    def title(self) -> str:
        return self.lemmas[0].replace("_", " ")

    def passage(self) -> str:
        """The synset as prose: ``Idempotent (adjective): unchanged in value ... For example: "..."``."""
        head = f"{self.title[:1].upper()}{self.title[1:]} ({POS_NAMES.get(self.pos, self.pos)}): {self.definition}."
        synonyms = [w.replace("_", " ") for w in self.lemmas[1:]]
        if synonyms:
            head += f" Also called: {', '.join(synonyms)}."
        if self.examples:
            head += " For example: " + "; ".join(f'"{e}"' for e in self.examples) + "."
        return head


def _split_gloss(gloss: str) -> tuple[str, tuple[str, ...]]:
    examples = tuple(e.strip() for e in _EXAMPLE.findall(gloss))
    definition = _EXAMPLE.sub("", gloss)
    definition = re.sub(r"(\s*;\s*)+$", "", re.sub(r"\s*;\s*(;\s*)+", "; ", definition)).strip(" ;")
    return definition, examples


def _sense_numbers(root: Path) -> dict[tuple[str, str], int]:
    """(lemma, synset offset) -> the lemma's sense number, from ``index.*`` (empty when absent)."""
    senses: dict[tuple[str, str], int] = {}
    for pos in POS_FILES:
        path = root / f"index.{pos}"
        if not path.is_file():
            continue
        with path.open(encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(" "):
                    continue
                parts = line.split()
                count = int(parts[2])
                for n, offset in enumerate(parts[-count:], 1):
                    senses[(parts[0], offset)] = n
    return senses


def read_synsets(root: Path = WORDNET_DIR) -> list[Synset]:
    """Every synset in ``root``'s data files; :class:`WordNetMissingError` when there are none to read."""
    if not (root / "data.noun").is_file():
        raise WordNetMissingError(root)
    senses = _sense_numbers(root)
    synsets: list[Synset] = []
    for pos in POS_FILES:
        path = root / f"data.{pos}"
        if not path.is_file():
            continue
        with path.open(encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(" ") or "|" not in line:
                    continue  # the licence header
                head, _, gloss = line.partition("|")
                parts = head.split()
                offset, ss_type, count = parts[0], parts[2], int(parts[3], 16)
                lemmas = tuple(re.sub(r"\([a-z]+\)$", "", w) for w in parts[4 : 4 + 2 * count : 2])
                numbers = tuple(senses.get((w.lower(), offset), 99) for w in lemmas)
                first = lemmas[0].lower()
                name = f"{first}.{ss_type}.{numbers[0]:02d}" if numbers[0] != 99 else f"{first}.{ss_type}.{offset}"
                definition, examples = _split_gloss(gloss.strip())
                synsets.append(Synset(name, ss_type, lemmas, definition, examples, numbers))
    return synsets


class WordNetIndex:
    """BM25 over each synset's lemmas and gloss, with a bonus for a synset whose lemma is the asked word."""

    def __init__(self, synsets: list[Synset]) -> None:
        self.synsets = synsets
        texts = [" ".join(w.replace("_", " ") for w in s.lemmas) + " " + s.definition for s in synsets]
        self.bm25 = BM25Index(texts)
        ranked: dict[str, list[tuple[int, int]]] = {}
        for i, s in enumerate(synsets):
            for j, lemma in enumerate(s.lemmas):
                sense = s.senses[j] if j < len(s.senses) else 99
                ranked.setdefault(lemma.lower().replace("_", " "), []).append((sense, i))
        self.by_lemma = {lemma: [i for _, i in sorted(found)] for lemma, found in ranked.items()}

    def __len__(self) -> int:
        return len(self.synsets)

    def search(self, query: str, words: list[str], k: int = 4) -> list[tuple[Synset, float]]:
        """The ``k`` best synsets for ``query``; a synset named by one of ``words`` comes first, by sense order."""
        scores = self.bm25.scores(query)
        bonus = float(scores.max()) + 1.0 if len(scores) else 1.0
        for word in words:
            for rank, i in enumerate(self.by_lemma.get(word.lower().strip(), [])):
                scores[i] += bonus / (1 + 0.1 * rank)  # the asked word's senses, first sense first
        return [(self.synsets[i], score) for i, score in top(scores, k)]


def load_wordnet(root: Path = WORDNET_DIR) -> WordNetIndex:
    """The index of ``root``, built on first use and kept for the process (blocking: call it off the loop)."""
    root = Path(root)
    with _lock:
        index = _cache.get(root)
        if index is None:
            index = _cache[root] = WordNetIndex(read_synsets(root))
        return index
