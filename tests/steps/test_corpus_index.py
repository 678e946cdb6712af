from __future__ import annotations

from pathlib import Path

import numpy as np

from steps.corpus import folder_passages, split_document, stdlib_passages
from steps.embedding import MiniLMEmbedder
from steps.index import INDEX_VERSION, IndexNotFoundError, VectorIndex, load_or_build


def test_split_at_rest_and_markdown_headings() -> None:
    rest = "Title\n=====\n\n" + "intro text. " * 20 + "\n\nPart two\n--------\n\n" + "more words here. " * 20
    passages = split_document("doc.html", rest)
    assert [p.title for p in passages] == ["Title", "Part two"]
    md = "# Top\n\n" + "alpha beta. " * 20 + "\n\n## Sub\n\n" + "gamma delta. " * 20
    assert [p.title for p in split_document("a.md", md)] == ["Top", "Sub"]


def test_long_sections_are_cut_below_max_chars() -> None:
    body = "\n\n".join("word " * 60 for _ in range(20))
    passages = split_document("x.txt", f"Head\n====\n\n{body}", max_chars=500)
    assert len(passages) > 3
    assert all(len(p.text) <= 500 for p in passages)


def test_folder_reads_every_format_and_names_sources(tmp_path: Path) -> None:
    (tmp_path / "guide").mkdir()
    (tmp_path / "guide" / "intro.md").write_text("# Intro\n\n" + "Conveyor runs steps on topics. " * 10)
    (tmp_path / "page.html").write_text("<html><h1>Page</h1><p>" + "HTML body text here. " * 10 + "</p><script>x()</script></html>")
    (tmp_path / "notes.txt").write_text("Notes\n=====\n\n" + "Plain text notes. " * 10)
    (tmp_path / "api.rst.txt").write_text("API\n===\n\n" + "Sphinx source text. " * 10)
    sources = {p.source for p in folder_passages(tmp_path)}
    assert sources == {"guide/intro.md", "page.html", "notes.txt", "api.html"}
    assert not any("x()" in p.text for p in folder_passages(tmp_path))


def test_stdlib_fallback_corpus_has_real_documents() -> None:
    passages = stdlib_passages()
    sources = {p.source for p in passages}
    assert "library/json.html" in sources and any(s.startswith("pydoc/") for s in sources)
    assert len(passages) > 200


def test_index_search_save_load(tmp_path: Path, corpus_dir: Path) -> None:
    embedder = MiniLMEmbedder()
    index = load_or_build(tmp_path, embedder, corpus_dir)
    hits = index.search(embedder.embed(["How do I decode JSON into a Python object?"])[0], k=3)
    assert hits[0].source == "library/json.html"
    assert hits[0].score >= hits[1].score >= hits[2].score
    again = load_or_build(tmp_path, embedder, corpus_dir)  # from the cache: same vectors, no rebuild
    assert np.array_equal(again.vectors, index.vectors) and len(again) == len(index)
    assert [p.name.endswith(f"-v{INDEX_VERSION}") for p in tmp_path.iterdir()] == [True]  # stale formats rebuild


def test_missing_index_says_how_to_build(tmp_path: Path) -> None:
    try:
        VectorIndex.load(tmp_path / "nothing")
    except IndexNotFoundError as exc:
        assert "conveyor index" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("expected IndexNotFoundError")


PAGE = """:mod:`collections` --- Container datatypes
==========================================

.. module:: collections
   :synopsis: Container datatypes

Counter objects
---------------

A counter tool is provided to support convenient and rapid tallies.

.. class:: Counter([iterable-or-mapping])

   A :class:`Counter` is a :class:`dict` subclass for counting hashable objects.

   .. method:: most_common([n])

      Return a list of the *n* most common elements and their counts from the
      most common to the least.

      {filler}

      Elements with equal counts are ordered in the order first encountered::

         >>> Counter('abracadabra').most_common(3)
         [('a', 5), ('b', 2), ('r', 2)]

.. function:: namedtuple(typename, field_names)

   Returns a new tuple subclass named *typename*.
"""


def test_api_directives_are_qualified_with_module_and_class() -> None:
    (passage,) = split_document("library/collections.html", PAGE.format(filler="Filler."))
    assert [(a.kind, a.name) for a in passage.apis] == [
        ("class", "collections.Counter"), ("method", "collections.Counter.most_common"),
        ("function", "collections.namedtuple"),
    ]
    assert ".. method:: collections.Counter.most_common([n])" in passage.text
    assert passage.apis[1].signature == "collections.Counter.most_common([n])"


def test_a_passage_cut_inside_an_api_body_starts_with_its_directive() -> None:
    filler = "\n\n      ".join("Counting words is a common need when reading text. " * 6 for _ in range(4))
    passages = split_document("library/collections.html", PAGE.format(filler=filler), max_chars=700)
    assert len(passages) > 2
    tail = [p for p in passages if "abracadabra" in p.text]
    assert tail and tail[0].text.startswith(".. method:: collections.Counter.most_common([n])")
    assert "Return a list of the *n* most common elements" in tail[0].text  # what it does, carried along
    assert [a.name for a in tail[0].apis][0] == "collections.Counter.most_common"
    # a paragraph back at the top level closes the body: nothing after it is carried as most_common's
    assert not any(p.text.startswith(".. method::") and "namedtuple" in p.text.split("\n\n")[1] for p in passages)

