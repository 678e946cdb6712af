"""Pure tests of the research steps: text tools, BM25, WordNet, parse, merge, findings, synthesis, fact-check."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from steps.base import RejectedStepError, StepContext
from steps.deps import Deps, ResourceConfig
from steps.registry import resolve
from steps.research.bm25 import BM25Index
from steps.research.models import Finding, Hit, NumberedSource
from steps.research.parse import parse_question
from steps.research.rank import TERM_BONUS, choose, relevance
from steps.research.search import fuse
from steps.research.synthesis import cite, number_sources, pick_sentences
from steps.research.text import negations, numbers, polarity_flips, sentences, stem
from steps.research.wordnet import WordNetIndex, WordNetMissingError, load_wordnet, read_synsets

WORDNET = Path(__file__).parent.parent / "data" / "research_wordnet"


def ctx() -> StepContext:
    return StepContext(request_id="r-research")


@pytest.fixture(scope="module")
def deps(tmp_path_factory: pytest.TempPathFactory) -> Deps:
    """Real MiniLM embedder; no docs index is loaded by these tests."""
    return Deps(ResourceConfig(index_dir=tmp_path_factory.mktemp("index")))


def warmed(name: str, deps: Deps, **config: Any) -> Any:
    runner = resolve(name).build(config)
    asyncio.run(runner.warm_up(deps))
    return runner


# -- text ---------------------------------------------------------------------------------------

def test_sentences_keep_their_markers_and_split_code_openings() -> None:
    text = "It stays unchanged [1]. range(5) gives 0 to 4 [2][3]. See e.g. sorted() for more."
    assert sentences(text) == ["It stays unchanged [1].", "range(5) gives 0 to 4 [2][3].", "See e.g. sorted() for more."]


def test_negations_ignore_idioms_and_none() -> None:
    assert negations("It does not wait.") == 1 and negations("It can't wait.") == 1
    assert negations("It runs whether or not an error occurred, no matter what.") == 0
    assert negations("sort() returns None.") == 0


def test_numbers_and_polarity_flips() -> None:
    assert numbers("7 // 2 is 3.0, not 3.5") == {"7", "2", "3", "3.5"}
    assert polarity_flips("Tuples are mutable", "Tuples are immutable sequences") == ["mutable"]
    assert polarity_flips("It is unchanged", "It stays changed") == ["unchang"]
    assert polarity_flips("Lists are mutable", "Lists are mutable sequences") == []
    assert stem("functions") == "function" and stem("class") == "class"


# -- BM25 and WordNet ---------------------------------------------------------------------------

def test_bm25_ranks_the_rare_term_first() -> None:
    index = BM25Index(["the loop can be closed", "close() is idempotent: call it twice", "a function and a loop"])
    assert index.search("is close idempotent", 3)[0][0] == 1
    assert index.search("unknownword", 3) == []


def test_wordnet_reader_names_synsets_as_nltk_does() -> None:
    synsets = {s.name: s for s in read_synsets(WORDNET)}
    assert set(synsets) >= {"idempotent.s.01", "python.n.01", "python.n.02", "ephemeral.s.01"}
    python = synsets["python.n.01"]
    assert python.definition == "a high-level programming language" and python.source == "wordnet:python.n.01"
    ephemeral = synsets["ephemeral.s.01"]
    assert ephemeral.passage() == ('Ephemeral (adjective): lasting a very short time. Also called: short-lived. '
                                   'For example: "the ephemeral joys of childhood".')


def test_wordnet_search_puts_the_asked_words_senses_first() -> None:
    index = WordNetIndex(read_synsets(WORDNET))
    found = index.search("what does idempotent mean for a python function", ["idempotent"], k=3)
    assert found[0][0].name == "idempotent.s.01"
    assert [s.name for s, _ in index.search("python", ["python"], k=2)] == ["python.n.01", "python.n.02"]


def test_wordnet_missing_names_the_debian_package(tmp_path: Path) -> None:
    with pytest.raises(WordNetMissingError, match=r"apt-get install wordnet-base") as caught:
        load_wordnet(tmp_path / "nowhere")
    assert caught.value.root == tmp_path / "nowhere"


def test_wordnet_search_step_fails_fatally_without_wordnet(deps: Deps, tmp_path: Path) -> None:
    step = warmed("wordnet-search", deps, root=str(tmp_path))  # warm-up logs, does not raise
    with pytest.raises(WordNetMissingError):
        asyncio.run(step.run(step.Input(question="What is a closure?"), ctx()))
    fallback = warmed("source-unavailable", deps, source="wordnet")
    out = asyncio.run(fallback.run(fallback.Input(), ctx()))
    assert out.origin == "wordnet" and out.hits == [] and "failed" in (out.error or "")


def test_wordnet_search_step(deps: Deps) -> None:
    step = warmed("wordnet-search", deps, root=str(WORDNET), top_k=2)
    c = ctx()
    out = asyncio.run(step.run(step.Input(question="What does 'idempotent' mean?", defines=["idempotent"]), c))
    assert out.hits[0].source == "wordnet:idempotent.s.01" and out.hits[0].origin == "wordnet"
    assert "multiplication by itself" in out.hits[0].text
    assert [s.name for s in c.spans] == ["wordnet.bm25"]


# -- parse, fuse, merge -------------------------------------------------------------------------

def test_parse_splits_questions_and_finds_defined_words() -> None:
    parsed = parse_question("What does 'idempotent' mean and how do I make a Python function idempotent?")
    assert parsed.subquestions == ["What does 'idempotent' mean?", "how do I make a Python function idempotent?"]
    assert parsed.defines == ["idempotent"] and parsed.terms == ["idempotent", "make", "python", "function"]
    assert parse_question("What is a closure?").defines == ["closure"]
    assert parse_question("What is a closure and how do I write one?").defines == ["closure"]
    assert parse_question("How do I sort a list?").defines == []
    with pytest.raises(RejectedStepError, match="question in words"):
        parse_question(" ?! ")


def test_reciprocal_rank_fusion_prefers_items_both_rankings_hold() -> None:
    assert [i for i, _ in fuse([[1, 2, 3], [3, 4, 1]], 2)] == [1, 3]


def hit(source: str, origin: str, score: float) -> Hit:
    return Hit(source=source, title=source, text=f"text of {source}", score=score, origin=origin)


def test_choose_keeps_each_sources_best_hit() -> None:
    hits = [hit("a", "docs", 0.9), hit("b", "docs", 0.8), hit("c", "docs", 0.7), hit("d", "docs", 0.65),
            hit("w", "wordnet", 0.5), hit("v", "wordnet", 0.3), hit("x", "wordnet", 0.1)]
    assert [h.source for h in choose(hits, 2, 0.25)] == ["a", "w"]
    assert [h.source for h in choose(hits, 5, 0.25)] == ["a", "b", "c", "w", "v"]  # at most 3 docs while WordNet has more
    assert [h.source for h in choose(hits, 7, 0.25)] == ["a", "b", "c", "d", "w", "v"]  # then the cap lifts
    weak = [hit("a", "docs", 0.9), hit("b", "docs", 0.8), hit("w", "wordnet", 0.35)]
    assert [h.source for h in choose(weak, 2, 0.25)] == ["a", "b"]  # below min_each a source competes on score
    assert relevance(0.3, "close() is idempotent", ["idempotent"]) == round(0.3 + TERM_BONUS, 4)
    assert relevance(0.3, "close() is safe", ["idempotent"]) == 0.3


def test_merge_reports_missing_and_failed_sources(deps: Deps) -> None:
    step = warmed("research-merge", deps, top_k=3)
    docs = {"origin": "docs", "hits": [hit("library/json.html", "docs", 0.1).model_dump()]}
    failed = {"origin": "wordnet", "hits": [], "error": "the wordnet search failed"}
    out = asyncio.run(step.run(step.Input(question="How do I parse JSON?", branches={"docs-search": docs,
                                                                                      "wordnet-search": failed}), ctx()))
    assert out.searched == ["docs"] and [m.origin for m in out.sources_missing] == ["wordnet"]
    late = asyncio.run(step.run(step.Input(question="How do I parse JSON?", branches={"docs-search": docs},
                                           missing=["wordnet-search"]), ctx()))
    assert late.sources_missing[0].origin == "wordnet-search" and "timeout" in late.sources_missing[0].reason


# -- findings and synthesis ---------------------------------------------------------------------

def finding(rank: int, origin: str, sentences: list[str], scores: list[float], text: str = "") -> Finding:
    return Finding(rank=rank, source=f"{origin}:{rank}", title=f"t{rank}", origin=origin, text=text or " ".join(sentences),
                   score=max(scores), sentences=sentences, sentence_scores=scores)


def test_extract_keeps_the_closest_sentences_in_passage_order(deps: Deps) -> None:
    step = warmed("research-extract", deps, per_passage=2)
    text = ("The loop runs until stop() is called. This method is idempotent and irreversible. "
            "Weather in Paris is mild in spring. Calling it twice has the same effect as calling it once.")
    item = Hit(source="library/asyncio-eventloop.html", title="Running and stopping the loop", text=text, score=0.5,
               origin="docs")
    out = asyncio.run(step.run(step.Input(question="Is close() idempotent, can I call it twice?", defines=["idempotent"],
                                          item=item, index=3), ctx()))
    assert out.finding.rank == 3 and len(out.finding.sentences) == 2
    assert "Weather in Paris is mild in spring." not in out.finding.sentences
    assert out.finding.sentences == sorted(out.finding.sentences, key=text.index)


def test_pick_sentences_takes_each_sources_best_and_numbers_by_first_citation() -> None:
    findings = [finding(0, "docs", ["Docs one.", "Docs two."], [0.9, 0.8]), finding(1, "docs", ["Docs three."], [0.85]),
                finding(2, "wordnet", ["Word one."], [0.4])]
    picked = pick_sentences(findings, max_sentences=2, min_score=0.3, min_each=0.4)
    assert picked == [(0, "Docs one."), (2, "Word one.")]
    assert pick_sentences(findings, max_sentences=2, min_score=0.3, min_each=0.45) == [(0, "Docs one."), (1, "Docs three.")]
    text, sources = number_sources(" ".join(cite(s, i + 1) for i, s in picked), findings)
    assert text == "Docs one [1]. Word one [2]." and [s.source for s in sources] == ["docs:0", "wordnet:2"]
    assert number_sources("A [3]. B [9]. C [3].", findings)[0] == "A [1]. B [9]. C [1]."


def test_extractive_synthesis_cites_both_sources(deps: Deps) -> None:
    step = warmed("research-synthesis", deps)
    findings = [finding(0, "docs", ["This method is idempotent and irreversible."], [0.6]),
                finding(1, "wordnet", ["Idempotent (adjective): unchanged in value following multiplication by itself."],
                        [0.8])]
    out = asyncio.run(step.run(step.Input(question="What does idempotent mean?", findings=findings), ctx()))
    assert out.method == "extractive" and out.answer.count("[") == 2
    assert {c.source for c in out.citations} == {"docs:0", "wordnet:1"}
    assert [s.n for s in out.sources] == [1, 2] and out.sources[0].text == findings[0].text
    empty = asyncio.run(step.run(step.Input(question="What?", findings=[]), ctx()))
    assert empty.answer.startswith("I don't know") and empty.citations == []


# -- fact-check ---------------------------------------------------------------------------------

def source(n: int, text: str) -> NumberedSource:
    return NumberedSource(n=n, source=f"s{n}", title=f"t{n}", origin="docs", score=0.5, text=text)


def test_factcheck_flags_changed_numbers_negations_and_unknown_sources(deps: Deps) -> None:
    step = warmed("research-factcheck", deps)
    sources = [source(1, "The default maxsize is 128. The cache saves the most recent calls."),
               source(2, "Idempotent (adjective): unchanged in value following multiplication by itself.")]
    answer = ("The default maxsize is 128 [1]. The default maxsize is 256 [1]. "
              "Idempotent means changed in value following multiplication by itself [2]. "
              "Something idempotent keeps its value when multiplied by itself [2]. It is fast [7]. No marker here.")
    out = asyncio.run(step.run(step.Input(answer=answer, sources=sources), ctx())).factcheck
    verdicts = [(c.supported, c.reason) for c in out.sentences]
    assert verdicts == [(True, None), (False, "number"), (False, "negation"), (True, None), (False, "unknown-source")]
    assert out.checked == 5 and out.unsupported == 3
    assert out.sentences[0].source == "s1" and out.sentences[0].score > out.threshold


def test_llm_synthesis_records_usage_and_its_unsupported_sentence_is_flagged(fake_llm: Any) -> None:
    """The scripted model answers "Use reversed() or list.reverse() [1]." whatever it is asked: not in source 1."""
    config = ResourceConfig(index_dir=Path("/nonexistent"), llm_provider="openai", llm_base_url=fake_llm.base_url,
                            llm_model="ok", prices={"ok": (1.0, 2.0)})
    llm_deps = Deps(config)
    synthesis = warmed("research-synthesis", llm_deps)
    factcheck = warmed("research-factcheck", llm_deps)
    findings = [finding(0, "wordnet", ["Idempotent (adjective): unchanged in value following multiplication by itself."],
                        [0.8])]
    c = ctx()
    out = asyncio.run(synthesis.run(synthesis.Input(question="What does idempotent mean?", findings=findings), c))
    assert out.method == "llm" and out.answer == "Use reversed() or list.reverse() [1]."
    assert [s.source for s in out.sources] == ["wordnet:0"]
    (usage,) = c.usage
    assert (usage.model, usage.input_tokens, usage.output_tokens) == ("ok", 120, 12)
    assert usage.cost_usd == pytest.approx((120 * 1.0 + 12 * 2.0) / 1e6)
    assert [s.name for s in c.spans] == ["llm.synthesis"] and c.spans[0].kind == "llm"
    sent = fake_llm.requests[-1]["messages"][-1]["content"]
    assert "[1] t0 (wordnet:0): Idempotent (adjective)" in sent and "Question: What does idempotent mean?" in sent
    check = asyncio.run(factcheck.run(factcheck.Input(answer=out.answer, sources=out.sources), ctx())).factcheck
    assert check.unsupported == 1 and check.sentences[0].supported is False
    asyncio.run(llm_deps.close())


def test_research_steps_never_import_kafka_or_faust() -> None:
    import ast

    forbidden = {"faust", "aiokafka", "kafka", "streams"}
    for path in (Path(__file__).parents[2] / "steps" / "research").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not {n.split(".")[0] for n in names} & forbidden, path


def test_vectors_are_unit_norm(deps: Deps) -> None:  # the fact-check's cosines rely on it
    v = asyncio.run(deps.embedder.embed(["a sentence", "another one"]))
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
