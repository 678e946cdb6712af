"""Knowledge-base documents: read a folder of Markdown/reST/HTML/text files and split it into passages.

The default corpus is the Python 3.11 documentation from Debian's ``python3.11-doc`` (reST sources);
where it is not installed, :func:`stdlib_passages` builds a smaller corpus from documentation that
ships with Python itself (``pydoc_data`` topics and standard-library module docstrings).
"""

from __future__ import annotations

import hashlib
import html
import importlib
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from steps.markup import ApiFact, api_directive, parse, qualify_directives

__all__ = [
    "PYTHON_DOCS",
    "PYTHON_DOCS_EXCLUDE",
    "Passage",
    "corpus_fingerprint",
    "folder_passages",
    "stdlib_passages",
]

PYTHON_DOCS = Path("/usr/share/doc/python3.11/html/_sources")
MAX_CARRIED_DESCRIPTION = 400  # an API's first paragraph is repeated in passages cut from its body up to this size
SUFFIXES = (".rst.txt", ".rst", ".md", ".markdown", ".txt", ".html", ".htm")
_RST_UNDERLINE = re.compile(r"([=\-~^*#\"'`+])\1{3,}")
_MD_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")


@dataclass(frozen=True)
class Passage:
    """A chunk of a document: ``source`` names the document (e.g. ``library/json.html``)."""

    source: str
    title: str
    text: str

    @property
    def apis(self) -> list[ApiFact]:
        """The APIs this passage documents, from its directive lines (``.. function:: json.loads(s, ...)``)."""
        return parse(self.text).facts


def _source_name(root: Path, path: Path) -> str:
    rel = path.relative_to(root).as_posix()
    if rel.endswith(".rst.txt"):  # Sphinx _sources: cite the rendered page
        return rel[: -len(".rst.txt")] + ".html"
    return rel


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "nav"):
            self._skip += 1
        elif tag in ("h1", "h2", "h3", "h4"):
            self.lines.append("\n# ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "nav"):
            self._skip = max(0, self._skip - 1)
        elif tag in ("p", "div", "li", "pre", "h1", "h2", "h3", "h4", "tr", "br"):
            self.lines.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.lines.append(data)


def _html_to_markdownish(text: str) -> str:
    parser = _TextExtractor()
    parser.feed(text)
    return html.unescape("".join(parser.lines))


def _sections(text: str) -> list[tuple[str, str]]:
    """Split a document at reST or Markdown headings into (heading, body) pairs."""
    lines = text.splitlines()
    sections: list[tuple[str, list[str]]] = [("", [])]
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
        md = _MD_HEADING.match(line)
        if line.strip() and _RST_UNDERLINE.fullmatch(nxt) and not _RST_UNDERLINE.fullmatch(line.strip()):
            sections.append((line.strip(), []))
            i += 2
            continue
        if md:
            sections.append((md.group(2).strip(), []))
        elif not _RST_UNDERLINE.fullmatch(line.strip()):
            sections[-1][1].append(line)
        i += 1
    return [(title, "\n".join(body).strip()) for title, body in sections]


def split_document(source: str, text: str, min_chars: int = 120, max_chars: int = 1500) -> list[Passage]:
    """Passages of at most ``max_chars``, cut at headings, then at paragraph boundaries.

    API directives are qualified with their module and class (:func:`steps.markup.qualify_directives`),
    and a passage cut from the middle of an API's documented body starts with that API's directive
    line and the first paragraph of its body (what it does), so that every passage names the APIs it
    describes and says what they do.
    """
    out: list[Passage] = []
    doc_title = ""
    if ".. " in text:
        text = qualify_directives(text)
    for title, body in _sections(text):
        doc_title = doc_title or title
        if len(body) < min_chars:
            continue
        name = title or doc_title or source
        chunk = ""
        # the API directive whose body we are in: (indent, directive line, first paragraph of its body)
        active: tuple[int, str, str] | None = None
        for para in re.split(r"\n\s*\n", body):
            first = para.lstrip("\n")
            indent = len(first) - len(first.lstrip())
            carried = active if active is not None and indent > active[0] else None
            if first.strip() and carried is None:
                active = None
            if api_directive(first.split("\n", 1)[0]) is not None:
                active = (indent, first.split("\n", 1)[0], "")
            elif active is not None and not active[2] and indent > active[0] and not first.lstrip().startswith(".."):
                active = (active[0], active[1], para if len(para) <= MAX_CARRIED_DESCRIPTION else "")
            if chunk and len(chunk) + len(para) + 2 > max_chars:
                out.append(Passage(source, name, chunk.strip()))
                chunk = _carry(carried) if carried else ""
            while len(para) > max_chars:
                out.append(Passage(source, name, para[:max_chars]))
                para = para[max_chars:]
            chunk = f"{chunk}\n\n{para}" if chunk else para
        if len(chunk.strip()) >= min_chars:
            out.append(Passage(source, name, chunk.strip()))
    return out


def _carry(active: tuple[int, str, str]) -> str:
    """The head of a passage cut inside an API's body: its directive line and what it does (first paragraph)."""
    _, directive, description = active
    return f"{directive.strip()}\n\n{description}\n\n" if description else f"{directive.strip()}\n\n"


# Parts of the Python docs that answer no user question well (release notes, C API, legal pages)
PYTHON_DOCS_EXCLUDE = (
    "whatsnew/", "c-api/", "distutils/", "install/", "includes/",
    "license", "copyright", "about", "bugs", "contents",
)


def _files(root: Path, exclude: tuple[str, ...] = ()) -> list[Path]:
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.name.lower().endswith(SUFFIXES)
        and not p.relative_to(root).as_posix().startswith(exclude)
    )


def folder_passages(root: Path, exclude: tuple[str, ...] = ()) -> list[Passage]:
    """Every passage of every Markdown/reST/HTML/text file under ``root`` (minus ``exclude`` prefixes)."""
    root = root.resolve()
    passages: list[Passage] = []
    for path in _files(root, exclude):
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix.lower() in (".html", ".htm"):
            text = _html_to_markdownish(text)
        passages.extend(split_document(_source_name(root, path), text))
    return passages


def corpus_fingerprint(root: Path, exclude: tuple[str, ...] = ()) -> str:
    """A hash of the folder's file names, sizes and modification times (cache key for the index)."""
    h = hashlib.sha256(f"{root.resolve()}|{exclude}".encode())
    for path in _files(root, exclude):
        st = path.stat()
        h.update(f"{path}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


STDLIB_MODULES = (
    "abc argparse array asyncio base64 bisect collections contextlib copy csv dataclasses datetime "
    "decimal enum fractions functools glob hashlib heapq html http.client io itertools json logging math "
    "operator os os.path pathlib pickle pprint queue random re secrets shlex shutil socket sqlite3 statistics "
    "string struct subprocess sys tempfile textwrap threading time timeit typing unittest urllib.parse uuid "
    "venv warnings weakref zipfile"
).split()


def stdlib_passages() -> list[Passage]:
    """Fallback corpus shipped with Python: language-reference topics and stdlib docstrings."""
    from pydoc_data.topics import topics

    passages: list[Passage] = []
    for name, text in sorted(topics.items()):
        passages.extend(split_document(f"pydoc/{name}", f"{name}\n{'=' * len(name)}\n\n{text}"))
    for modname in STDLIB_MODULES:
        try:
            mod = importlib.import_module(modname)
        except ImportError:  # pragma: no cover - platform-specific module
            continue
        parts = [f"{modname}\n{'=' * len(modname)}\n\n{mod.__doc__ or ''}"]
        for attr in sorted(getattr(mod, "__all__", None) or dir(mod)):
            obj = getattr(mod, attr, None)
            doc = getattr(obj, "__doc__", None)
            if attr.startswith("_") or not doc or not callable(obj) or getattr(obj, "__module__", "") != mod.__name__:
                continue
            title = f"{modname}.{attr}"
            parts.append(f"{title}\n{'-' * len(title)}\n\n{doc}")
        passages.extend(split_document(f"library/{modname}.html", "\n\n".join(parts)))
    return passages
