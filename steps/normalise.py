"""Text normalisation for the safety checks: the readings of a text that an attacker may hide behind.

A check judges every *view* of a request, not just the raw string:

- ``clean``: Unicode NFKC (full-width and styled letters become ASCII), zero-width and soft-hyphen
  characters removed, common Cyrillic/Greek look-alike letters mapped to Latin.
- ``plain``: ``clean`` with spelling tricks undone: letters spaced or dotted apart (``I g n o r e``,
  ``i.d.i.o.t``) joined, syllables split apart (``dis re gard``, ``in-struc-tions``) joined when they
  make a known word, whitespace collapsed, leetspeak (``1gn0r3``, ``5y5t3m``) decoded, masked letters (``f*ck``) kept for the
  toxicity lexicon to match, misspelt keywords (``ignroe``, ``promt``) corrected.
- ``rot13``: the ROT13 reading, kept only when it reads as more English than the text itself.
- ``decoded``: base64, base32 and hex blobs of at least 16 characters decoded, kept when they decode
  to printable text.

Everything here is pure string work (well under a millisecond); the first ``plain`` reads the
tokenizer's vocabulary once (about 0.1 s).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import json
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

__all__ = ["KEYWORDS", "Views", "clean", "decode_blobs", "deleet", "join_fragments", "looks_english", "plain", "respell", "rot13_view", "views"]

_INVISIBLE = dict.fromkeys(
    map(ord, "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b\u200c\u200d\u200e\u200f"
        "\u202a\u202b\u202c\u202d\u202e\u2060\u2061\u2062\u2063\u2064\ufeff"),
    None,
)
# Look-alike letters that NFKC leaves alone (Cyrillic and Greek lower and upper case).
_CONFUSABLES = str.maketrans(
    "аеорсухіјѕԁԛԝАВЕКМНОРСТХІЈЅαβεικνορτυχΑΒΕΗΙΚΜΝΟΡΤΥΧΖ",
    "aeopcyxijsdqwABEKMHOPCTXIJSabeiknoptuxABEHIKMNOPTYXZ",
)

# Words an attack spells out and a normal text rarely splits: fragments that join into one are joined.
KEYWORDS = frozenset(
    """ignore ignoring disregard forget override bypass reveal previous prior above earlier instructions
    instruction rules rule guidelines prompt prompts system secret secrets password passwords restrictions
    restricted unrestricted unfiltered filter filters jailbreak jailbroken developer admin administrator
    credentials confidential hidden initial directives policy policies safety pretend roleplay repeat
    verbatim output print disable anything limits idiot stupid moron fuck fucking shit bitch asshole
    dumbass loser pathetic worthless useless garbage imbecile""".split()
)

_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "@": "a", "$": "s",
                       "!": "i", "|": "l", "€": "e", "+": "t"})
_LEET_TOKEN = re.compile(r"(?<![\w@$!|€+])[\w@$!|€+]*[A-Za-z][\w@$!|€+]*(?![\w@$!|€+])")
_SPACED = re.compile(r"(?<![^\W_])[^\W_]([ .\-_*·])[^\W_](?:\1[^\W_])+(?![^\W_])")  # one separator per run
_FRAGMENTS = re.compile(r"[^\W\d_]+(?:[ \-][^\W\d_]+)*")
_ENGLISH = frozenset(
    """the a an and or to of in on for is are was you your me my i it this that all with what be do not
    now from as at by tell show print give reveal ignore forget instructions rules previous prompt system
    secret password please say have been no any""".split()
)
_WORD = re.compile(r"[a-z]+")
_BLOB_B64 = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")
_BLOB_HEX = re.compile(r"\b(?:[0-9a-fA-F]{2}){8,}\b")
_BLOB_B32 = re.compile(r"\b[A-Z2-7]{16,}={0,6}")


def clean(text: str) -> str:
    """NFKC, invisible characters dropped, look-alike letters mapped to Latin (spacing kept: it separates
    the words of a letter-spaced text)."""
    return unicodedata.normalize("NFKC", text).translate(_INVISIBLE).translate(_CONFUSABLES).strip()


def deleet(text: str) -> str:
    """Leetspeak decoded in the tokens that mix letters with digits or symbols (``pr0mpt`` -> ``prompt``).

    A token with digits or symbols between letters is decoded; a name followed by a version
    (``python3``, ``utf8``) only when the decoding is a word (``rul35`` -> ``rules``); pure numbers never.
    """

    def fix(m: re.Match[str]) -> str:
        token = m.group(0)
        core = token.strip("!|+")  # "lot!" ends a sentence; "sh!t" hides a letter
        if core.isalpha() or not core:
            return token
        decoded = core.translate(_LEET)
        if not decoded.isalpha():
            return token
        if re.fullmatch(r"[A-Za-z]+\d+(\.\d+)*", core) and decoded.lower() not in KEYWORDS | _known_words():
            return token  # a name with a version (python3, utf8, sha256), unless it spells a word (rul35, th3)
        return token.replace(core, decoded)

    return _LEET_TOKEN.sub(fix, text)


def join_fragments(text: str) -> str:
    """Letters spaced or dotted apart are joined; split syllables are joined when they make a keyword."""
    text = _SPACED.sub(lambda m: m.group(0).replace(m.group(1), ""), text)

    def join_run(m: re.Match[str]) -> str:
        words = re.split(r"[ \-]", m.group(0))
        out: list[str] = []
        i = 0
        while i < len(words):
            for k in range(min(5, len(words) - i), 1, -1):
                if "".join(words[i : i + k]).lower() in KEYWORDS:
                    out.append("".join(words[i : i + k]))
                    i += k
                    break
            else:
                out.append(words[i])
                i += 1
        return m.group(0) if len(out) == len(words) else " ".join(out)

    return _FRAGMENTS.sub(join_run, text)


_EN_WORDS = frozenset("the a an and or to of in on is are you your i my it this that what how do does with for not".split())
_OTHER_WORDS = frozenset(
    """le la les un une des et est tu je il ne pas du au avec pour comment que qui dans sur
    der die das ein eine und ist ich du nicht mit wie was auf für zu den dem ohne als
    el los las unos y es yo tú no con cómo como qué por para en una lo del sin
    il di che per come posso con una um uma os não em""".split()
)
_LETTERS = re.compile(r"[^\W\d_]+")


def looks_english(text: str) -> bool:
    """True unless the text has more French/German/Spanish/Italian/Portuguese function words than English ones."""
    words = [w.lower() for w in _LETTERS.findall(text)]
    return sum(w in _EN_WORDS for w in words) >= sum(w in _OTHER_WORDS for w in words)


@lru_cache(maxsize=1)
def _known_words() -> frozenset[str]:
    """Whole words of the MiniLM tokenizer's vocabulary (30k): a word found there is not a misspelling."""
    from steps.embedding import tokenizer_path

    vocab = json.loads(tokenizer_path().read_text(encoding="utf-8"))["model"]["vocab"]
    return frozenset(w for w in vocab if w.isalpha())


def _distance(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment edit distance (a swap of neighbours counts 1), cut off above ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > limit:
            return limit + 1
        prev2, prev = prev, cur
    return prev[-1]


def respell(text: str) -> str:
    """Misspelt keywords corrected (``ignroe`` -> ``ignore``, ``instrucions`` -> ``instructions``).

    Only a word of 4+ letters that is not a known word and lies within one edit of a keyword (two for
    words of 9+ letters) is changed, so real words (``ignored``, ``prompts``) stay as they are; a text
    that is not English is left alone (``ignorer`` is French, not a typo).
    """

    def fix(m: re.Match[str]) -> str:
        word = m.group(0)
        low = word.lower()
        if len(low) < 4 or low in KEYWORDS or low in _known_words():
            return word
        limit = 2 if len(low) >= 9 else 1
        best = min(KEYWORDS, key=lambda k: _distance(low, k, limit))
        if low.startswith(best) or _distance(low, best, limit) > limit:
            return word  # an inflection (``stupidly``) or nothing close
        return best

    return re.sub(r"[^\W\d_]+", fix, text) if looks_english(text) else text


def plain(text: str) -> str:
    """``clean`` with spacing, syllable splitting, leetspeak and misspelt keywords undone."""
    return re.sub(r"\s+", " ", respell(join_fragments(deleet(join_fragments(clean(text))))))


def _englishness(text: str) -> int:
    return sum(w in _ENGLISH for w in _WORD.findall(text.lower()))


def rot13_view(text: str) -> str | None:
    """The ROT13 reading of ``text`` when it has clearly more English words than the text itself."""
    decoded = codecs.encode(text, "rot13")
    return decoded if _englishness(decoded) >= max(3, 2 * _englishness(text) + 2) else None


def _printable(raw: bytes) -> str | None:
    try:
        out = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    letters = sum(c.isalpha() or c.isspace() for c in out)
    return out if len(out) >= 8 and letters >= 0.8 * len(out) else None


def decode_blobs(text: str) -> list[str]:
    """Printable texts hidden in base64, base32 or hex blobs of ``text``."""
    found: list[str] = []
    for m in _BLOB_HEX.finditer(text):
        found.append(_printable(binascii.unhexlify(m.group(0))) or "")
    for m in _BLOB_B32.finditer(text):
        blob = m.group(0).rstrip("=")
        try:
            found.append(_printable(base64.b32decode(blob + "=" * (-len(blob) % 8))) or "")
        except (binascii.Error, ValueError):
            pass
    for m in _BLOB_B64.finditer(text):
        blob = m.group(0).rstrip("=")
        if blob.isalpha() and (blob.islower() or blob.isupper()):
            continue  # a long plain word or an identifier, not an encoding
        try:
            raw = base64.b64decode(blob + "=" * (-len(blob) % 4), altchars=b"-_" if "-" in blob or "_" in blob else None)
        except (binascii.Error, ValueError):
            continue
        found.append(_printable(raw) or "")
    return [f for f in dict.fromkeys(found) if f]


@dataclass(frozen=True)
class Views:
    """The readings of one text that the checks judge."""

    clean: str
    plain: str
    extra: list[str] = field(default_factory=list)  # rot13 and decoded-blob readings, each already ``plain``

    @property
    def all(self) -> list[str]:
        return list(dict.fromkeys([self.clean, self.plain, *self.extra]))

    @property
    def hidden(self) -> list[str]:
        """The readings that differ from the text as written (what an embedding of ``clean`` misses)."""
        return [v for v in self.all if v != self.clean]


def views(text: str) -> Views:
    """Every reading of ``text`` worth checking (see the module docstring)."""
    c = re.sub(r"\s+", " ", clean(text))
    extra: list[str] = []
    rot = rot13_view(c)
    if rot is not None:
        extra.append(plain(rot))
    extra += [plain(d) for d in decode_blobs(c)]
    return Views(clean=c, plain=plain(text), extra=extra)
