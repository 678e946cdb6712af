"""reST/Markdown passages read as structure: API facts (directive signatures), prose and code.

Sphinx sources carry the name a user needs on directive lines (``.. function:: json.loads(s, ...)``)
and the examples in literal blocks (``::``, ``>>>``, ``.. code-block::``). A plain-text cleaner
that drops directives and keeps literal blocks answers "how do I parse JSON?" with a description
of ``json.loads`` that never names it, and with code read as prose (issue 8). :func:`parse` keeps
the three apart: :class:`ApiFact` for each signature, prose :class:`Block` s attributed to the API
whose body they are in, and :class:`CodeLine` s.

:func:`qualify_directives` runs at corpus time: it rewrites ``.. method:: most_common([n])`` inside
``.. class:: Counter`` of ``.. module:: collections`` as ``collections.Counter.most_common([n])``,
so that every passage names its APIs in full even when it is cut from the middle of a page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = [
    "API_KINDS",
    "ApiFact",
    "Block",
    "CodeLine",
    "Parsed",
    "api_directive",
    "clean_markup",
    "parse",
    "qualify_directives",
    "split_sentences",
]

API_KINDS = (
    "function", "class", "method", "classmethod", "staticmethod", "data", "exception", "attribute",
    "decorator", "decoratormethod", "property", "coroutinefunction", "coroutinemethod", "abstractmethod",
    "awaitablefunction", "awaitablemethod",
)
_CLASS_KINDS = ("class", "exception")
_API = re.compile(r"^(?P<indent>\s*)\.\. (?:py:)?(?P<kind>" + "|".join(API_KINDS) + r")::\s*(?P<sig>\S.*)$")
_MODULE = re.compile(r"^\s*\.\. (?:py:)?(?:module|currentmodule)::\s*(?P<name>\S+)")
_DIRECTIVE = re.compile(r"^(?P<indent>\s*)\.\. (?P<kind>[\w:-]+)::(?P<arg>.*)$")
_COMMENT = re.compile(r"^(?P<indent>\s*)\.\.(\s|$)")  # labels, footnotes, substitutions, comments
_CODE_DIRECTIVES = {"code-block", "sourcecode", "code", "doctest", "testcode", "testoutput", "testsetup",
                    "testcleanup", "productionlist", "literalinclude", "highlight", "parsed-literal"}
_SKIP_DIRECTIVES = {"toctree", "index", "moduleauthor", "sectionauthor", "image", "figure", "raw", "only",
                    "tabularcolumns", "csv-table", "list-table", "table", "rubric", "audit-event", "availability",
                    "impl-detail", "program", "cmdoption", "option", "envvar", "describe", "opcode", "pdbcommand",
                    "2to3fixer", "c:function", "c:type", "c:member", "c:macro", "c:var", "glossary", "include",
                    "module", "currentmodule", "py:module", "py:currentmodule", "versionadded", "deprecated-removed"}
_FIELD = re.compile(r"^\s*:[\w -]+:(\s|$)")
_TABLE_RULE = re.compile(r"^\s*[=+\-|]{3,}[=+\-| ]*$")
_ROLE = re.compile(r":[\w:+-]+:`(?P<tilde>~?)(?P<body>[^`<]*?)(?:\s*<(?P<target>[^>]*)>)?`")
_NAME = re.compile(r"^[A-Za-z_][\w.]*")
# code that reached prose (a literal block cut off from its "::" by a passage boundary)
_CODE_LIKE = re.compile(r"(^|\s)#\s|^\s*(def|class|import|from|return|for|while|if)\s[^.]*[:(]|\w\([^()]*\)\s*:\s|\w\(\w*\)\s*$|\b\w+ = \w+\(")


@dataclass(frozen=True)
class ApiFact:
    """One documented API: ``kind`` (function, class, method…), its qualified ``name`` and ``signature``."""

    kind: str
    name: str
    signature: str

    @property
    def short(self) -> str:
        """The last component of the name (``loads`` of ``json.loads``)."""
        return self.name.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class Block:
    """A paragraph of prose; ``owner`` is the API whose documented body it is part of."""

    owner: str | None
    text: str


@dataclass(frozen=True)
class CodeLine:
    owner: str | None
    line: str
    doctest: bool = False


@dataclass
class Parsed:
    facts: list[ApiFact] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    code: list[CodeLine] = field(default_factory=list)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def api_directive(line: str) -> ApiFact | None:
    """The :class:`ApiFact` of one directive line, or None when the line is not an API directive."""
    m = _API.match(line)
    if not m:
        return None
    sig = m["sig"].strip()
    name = _NAME.match(sig)
    if not name:
        return None
    return ApiFact(m["kind"], name.group(0).rstrip("."), sig)


def qualify_directives(text: str) -> str:
    """Rewrite API directive names with their module and class (see the module docstring)."""
    module: str | None = None
    classes: list[tuple[int, str]] = []  # (indent of the class directive, qualified class name)
    out: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            out.append(line)
            continue
        ind = _indent(line)
        mod = _MODULE.match(line)
        if mod:
            module = None if mod["name"] == "None" else mod["name"]
            classes.clear()
            out.append(line)
            continue
        fact = api_directive(line)
        if fact is None:
            if not line.lstrip().startswith(".. "):
                while classes and ind <= classes[-1][0]:
                    classes.pop()
            out.append(line)
            continue
        while classes and ind <= classes[-1][0]:
            classes.pop()
        qualified = _qualify(fact.name, module, classes[-1][1] if classes else None)
        out.append(line.replace(f":: {fact.name}", f":: {qualified}", 1) if qualified != fact.name else line)
        if fact.kind in _CLASS_KINDS:
            classes.append((ind, qualified))
    return "\n".join(out)


def _qualify(name: str, module: str | None, cls: str | None) -> str:
    if cls is not None:
        cls_short = cls.rsplit(".", 1)[-1]
        if "." not in name:
            return f"{cls}.{name}"
        if name.startswith(cls_short + ".") and cls != cls_short:
            return f"{cls[: -len(cls_short)]}{name}"
        return name
    if module and not name.startswith(module + "."):
        return f"{module}.{name}"
    return name


def parse(text: str) -> Parsed:
    """Facts, prose blocks and code lines of a reST/Markdown passage."""
    parsed = Parsed()
    owners: list[tuple[int, str]] = []  # API bodies we are in: (directive indent, name)
    skip_above: int | None = None  # lines indented more than this belong to a skipped/code body
    skip_is_code = False
    para: list[str] = []
    para_owner: str | None = None
    in_fence = False
    expect_signature_lines: int | None = None
    in_doctest = False  # inside an interpreter session: lines that are not ``>>>`` are its output

    def flush() -> None:
        nonlocal para
        if para:
            parsed.blocks.append(Block(para_owner, " ".join(para)))
        para = []

    def owner_at(ind: int) -> str | None:
        while owners and ind <= owners[-1][0]:
            owners.pop()
        return owners[-1][1] if owners else None

    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            flush()
            in_fence = not in_fence
            continue
        if in_fence:
            if stripped:
                parsed.code.append(CodeLine(owners[-1][1] if owners else None, line.rstrip()))
            continue
        if not stripped:
            flush()
            expect_signature_lines = None
            if skip_above is None:
                in_doctest = False
            continue
        if in_doctest and skip_above is None and not stripped.startswith(">>>"):
            continue  # the output of an interpreter session, up to a blank line
        ind = _indent(line)
        if expect_signature_lines is not None and ind > expect_signature_lines:
            continue  # a directive's options, or an API's alternative signatures
        expect_signature_lines = None
        if skip_above is not None:
            if ind > skip_above:
                if skip_is_code and not _FIELD.match(line):
                    in_doctest = in_doctest or stripped.startswith(">>>")
                    if not in_doctest or stripped.startswith(">>>"):  # a session's output is not code to show
                        _add_code(parsed, owners[-1][1] if owners else None, line)
                continue
            skip_above = None
        fact = api_directive(line)
        if fact is not None:
            flush()
            owner_at(ind)
            parsed.facts.append(fact)
            owners.append((ind, fact.name))
            expect_signature_lines = ind
            continue
        directive = _DIRECTIVE.match(line)
        if directive is not None:
            flush()
            kind = directive["kind"]
            if kind in _CODE_DIRECTIVES or kind in _SKIP_DIRECTIVES:
                skip_above, skip_is_code, in_doctest = ind, kind in _CODE_DIRECTIVES, False
            else:  # note, warning, versionchanged, seealso…: the body is prose
                arg = directive["arg"].strip()
                if kind in ("note", "warning", "important", "tip", "hint", "seealso", "attention") and arg:
                    para.append(arg)
            continue
        if _COMMENT.match(line):
            flush()
            skip_above, skip_is_code = ind, False
            continue
        if stripped.startswith((">>>", "... ")) or stripped == "...":
            flush()
            if stripped.startswith(">>>"):
                in_doctest = True
                _add_code(parsed, owner_at(ind), line)
            continue
        if _FIELD.match(line) or stripped.startswith(("**Source code:**", "Source code:")) or _TABLE_RULE.match(line):
            flush()
            continue
        owner = owner_at(ind)
        if para and owner != para_owner:
            flush()
        para_owner = owner
        if stripped.endswith("::"):
            lead = stripped[:-2].rstrip()
            if lead:
                para.append(lead + ":")
            flush()
            skip_above, skip_is_code, in_doctest = ind, True, False
            continue
        para.append(stripped)
    flush()
    return parsed


def _add_code(parsed: Parsed, owner: str | None, line: str) -> None:
    text = line.strip()
    doctest = text.startswith(">>>")
    if doctest:
        text = text[3:].strip()
    if text:
        parsed.code.append(CodeLine(owner, text, doctest))


def inline(text: str, *, code: bool = False) -> str:
    """Roles and inline literals unwrapped; with ``code``, names and literals kept in backticks."""

    def role(m: re.Match[str]) -> str:
        body = (m["body"] or m["target"] or "").strip()
        if m["target"] and not body:
            body = m["target"]
        if code and _NAME.fullmatch(body.rstrip("()")):
            return f"`{body}`"
        return body

    text = _ROLE.sub(role, text)
    if code:
        text = re.sub(r"``(.+?)``", r"`\1`", text)
    else:
        text = text.replace("``", "")
    text = text.replace("**", "")
    text = re.sub(r"(?<![\w`])\*(\w[^*]*?)\*(?![\w`])", r"\1", text)  # *emphasis*
    text = re.sub(r"`([^`]+?) <[^>]+>`_+", r"\1", text)  # `text <url>`_ links
    text = re.sub(r"\s+\[#[\w-]*\]_", "", text)  # footnote references
    return re.sub(r"\s+", " ", text).strip()


def clean_markup(text: str) -> str:
    """Readable prose from reST/Markdown: directives, code and field lists dropped, roles unwrapped."""
    return inline(" ".join(b.text for b in parse(text).blocks))


def sentences(text: str) -> list[str]:
    """Sentences of already-inlined prose."""
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z`\"'(])", text)
    return [s.strip() for s in parts if s.strip()]


def split_sentences(text: str) -> list[str]:
    """The prose sentences of a passage (25–400 characters, code-heavy fragments left out)."""
    return [s for s in sentences(clean_markup(text)) if 25 <= len(s) <= 400 and is_prose(s)]


def is_prose(sentence: str) -> bool:
    """Leave out interpreter sessions, literal blocks and other code-heavy fragments."""
    if ">>>" in sentence or "..." in sentence or sentence.rstrip().endswith("::"):
        return False
    plain = re.sub(r"`[^`]*`", "x", sentence)
    if _CODE_LIKE.search(plain):
        return False
    letters = sum(ch.isalpha() or ch == " " for ch in plain)
    return letters / max(1, len(plain)) >= 0.85
