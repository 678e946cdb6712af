"""Hybrid retrieval: the fusion, the speller, BM25 over passages, and the step on the small real corpus."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest

from steps.base import StepContext
from steps.deps import Deps, ResourceConfig
from steps.lexical import Correction, LexicalIndex, Speller, edit_distance, lexical_index, page_words
from steps.retrieval import Retrieval, RetrievalInput, RetrievalNotWarmError, best, fuse


@dataclass(frozen=True)
class P:
    source: str
    title: str
    text: str


def ctx() -> StepContext:
    return StepContext(request_id="r-retrieval")


def test_fuse_adds_reciprocal_ranks_and_breaks_ties_by_id() -> None:
    fused = fuse([[1, 2, 3], [3, 1]], k=10)
    assert [i for i, _ in fused] == [1, 3, 2]
    assert fused[0][1] == pytest.approx(1 / 11 + 1 / 12)
    assert [i for i, _ in fuse([[5], [4]], k=60)] == [4, 5]  # equal scores: lower id first


def test_fuse_weights_tilt_the_order_and_must_match_the_rankings() -> None:
    assert [i for i, _ in fuse([[1, 2], [2, 1]], k=1, weights=[1.0, 0.1])] == [1, 2]
    assert [i for i, _ in fuse([[1, 2], [2, 1]], k=1, weights=[0.1, 1.0])] == [2, 1]
    with pytest.raises(ValueError, match="one weight per ranking"):
        fuse([[1], [2]], k=60, weights=[1.0])


def test_best_returns_the_highest_positions_first() -> None:
    import numpy as np

    assert best(np.array([0.1, 0.9, -0.2, 0.5], dtype=np.float32), 2) == [1, 3]
    assert best(np.array([], dtype=np.float32), 3) == []


@pytest.mark.parametrize(
    ("a", "b", "limit", "expected"),
    [("recursivly", "recursively", 2, 1), ("teh", "the", 1, 1), ("abc", "abc", 1, 0), ("abcd", "wxyz", 2, 3),
     ("json", "jsonify", 1, 2)],
)
def test_edit_distance_counts_swaps_as_one_and_caps_at_limit(a: str, b: str, limit: int, expected: int) -> None:
    assert edit_distance(a, b, limit) == expected


def test_speller_corrects_unknown_words_to_the_nearest_common_word() -> None:
    speller = Speller(Counter({"recursively": 9, "directory": 5, "exception": 7, "exceptions": 2, "delete": 4}))
    text, fixes = speller.correct("Delete a directry recursivly, catch exeption")
    assert text == "Delete a directory recursively, catch exception"
    assert [(f.original, f.corrected) for f in fixes] == [
        ("directry", "directory"), ("recursivly", "recursively"), ("exeption", "exception")]


def test_speller_leaves_known_short_rare_foreign_and_far_words_alone() -> None:
    speller = Speller(Counter({"print": 9, "prints": 1, "json": 9, "format": 5}), min_count=2)
    assert "prints" not in speller  # seen once: not trusted as a correction target
    for word in ("print", "jsn", "données", "zzzzzzzz", "py3k"):
        assert speller.correct_word(word) is None, word
    assert speller.correct("formt the output")[0] == "format the output"


def test_speller_knows_inflections_and_words_seen_once() -> None:
    speller = Speller(Counter({"accent": 1, "accept": 30, "programs": 1, "program": 8}))
    assert speller.correct_word("accents") is None  # its stem "accent" is in the corpus: not "accepts"
    assert speller.correct_word("programs") is None  # seen once: known, though not a correction target
    assert speller.correct_word("programm") == Correction("programm", "program", 1)


def test_page_words_name_the_module() -> None:
    assert page_words("library/os.path.html") == "os path"
    assert page_words("howto/logging-cookbook.html") == "logging cookbook"


def test_lexical_index_finds_exact_identifiers_and_page_names() -> None:
    passages = [
        P("library/subprocess.html", "Older API", "Run command with arguments and return its output: check_output."),
        P("library/os.html", "Processes", "These functions may be used to create and manage processes."),
        P("library/tempfile.html", "Examples", "Here are some examples of typical usage."),
    ]
    lex = LexicalIndex(passages)
    assert lex.search("check_output", 3)[0][0] == 0
    assert lex.search("tempfile usage", 3)[0][0] == 2  # the page name is a word of its passages
    assert lex.search("nothing matches here", 3) == []


def test_lexical_index_is_built_once_per_index() -> None:
    @dataclass(eq=False)  # hashed by identity, as VectorIndex is
    class Index:
        passages: list[P]

    index = Index([P("a.html", "A", "alpha beta"), P("b.html", "B", "gamma delta")])
    assert lexical_index(index) is lexical_index(index)
    assert lexical_index(Index(list(index.passages))) is not lexical_index(index)


def test_unknown_mode_is_a_load_error() -> None:
    with pytest.raises(ValueError, match="'hybrid' or 'dense'"):
        Retrieval(mode="sparse")  # type: ignore[arg-type]


def test_run_before_warm_up_says_what_to_do() -> None:
    with pytest.raises(RetrievalNotWarmError, match="warm_up"):
        asyncio.run(Retrieval().run(RetrievalInput(text="json"), ctx()))


@pytest.fixture(scope="module")
def steps(warm: dict[str, Any]) -> dict[str, Retrieval]:
    deps: Deps = warm["deps"]
    made = {"hybrid": Retrieval(top_k=4), "dense": Retrieval(top_k=4, mode="dense")}

    async def go() -> None:
        for step in made.values():
            await step.warm_up(deps)

    asyncio.run(go())
    return made


def test_hybrid_corrects_typos_and_finds_the_page(steps: dict[str, Retrieval]) -> None:
    out = asyncio.run(steps["hybrid"].run(RetrievalInput(text="serialise pyton objct to jsn strng"), ctx()))
    assert out.passages[0].source == "library/json.html"
    assert out.query is not None and "object" in out.query and "string" in out.query


def test_hybrid_finds_an_identifier_by_name(steps: dict[str, Retrieval]) -> None:
    out = asyncio.run(steps["hybrid"].run(RetrievalInput(text="check_output"), ctx()))
    assert out.passages and out.passages[0].source == "library/subprocess.html"
    assert "check_output" in out.passages[0].text
    assert out.query is None  # nothing was corrected


def test_both_modes_return_the_same_shape_with_cosine_scores(steps: dict[str, Retrieval]) -> None:
    for mode, step in steps.items():
        out = asyncio.run(step.run(RetrievalInput(text="How do I sort a list in reverse order?"), ctx()))
        assert 0 < len(out.passages) <= 4, mode
        assert all(step.min_score <= p.score <= 1.0 for p in out.passages), mode
        assert out.index_size > 50
        assert any(p.source == "howto/sorting.html" for p in out.passages), mode


def test_min_score_drops_unrelated_passages(warm: dict[str, Any]) -> None:
    step = Retrieval(min_score=0.99)
    asyncio.run(step.warm_up(warm["deps"]))
    out = asyncio.run(step.run(RetrievalInput(text="sorting"), ctx()))
    assert out.passages == []


def test_empty_index_returns_nothing(tmp_path: Any) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "note.txt").write_text("", encoding="utf-8")
    deps = Deps(ResourceConfig(index_dir=tmp_path / "index", corpus_path=empty))
    step = Retrieval()
    asyncio.run(step.warm_up(deps))
    out = asyncio.run(step.run(RetrievalInput(text="anything"), ctx()))
    assert out.passages == [] and out.index_size == 0
