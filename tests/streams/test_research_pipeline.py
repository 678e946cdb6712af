"""The bundled research pipeline in-process (``streams.testing``) with the real steps, MiniLM and WordNet.

The docs index is built from a small generated corpus (a few Markdown pages) rather than the Python
docs, which take minutes to embed; WordNet is Debian's ``wordnet-base``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import steps.research  # noqa: F401  (registers the research steps)
from steps.deps import Deps, ResourceConfig
from steps.research.wordnet import WORDNET_DIR
from streams.pipeline_file import load_pipeline, parse_pipeline
from streams.testing import run_pipeline

QUESTION = "What does 'idempotent' mean and how do I make a Python function idempotent?"
PAGES = {
    "asyncio-loop.md": """# Running and stopping the loop

The event loop runs until its stop() method is called. The close() method of the loop is idempotent:
calling it a second time has no further effect. An idempotent function gives the same result and leaves
the same state however many times it is called, so a retried call is harmless.

# Scheduling callbacks

Callbacks are called in the order in which they are registered. Each callback is called exactly once.
""",
    "functions.md": """# Defining functions

The keyword def introduces a function definition. It must be followed by the function name and the
parenthesized list of formal parameters. To make a function safe to call twice, check whether its work
is already done before doing it, and return the existing result.
""",
    "json.md": """# Encoding JSON

json.dumps() serializes an object to a JSON formatted string. json.loads() deserializes a string holding
a JSON document to a Python object.
""",
}


@pytest.fixture(scope="module")
def deps(tmp_path_factory: pytest.TempPathFactory) -> Deps:
    if not (WORDNET_DIR / "data.noun").is_file():
        raise RuntimeError(f"{WORDNET_DIR} is missing: `apt-get install wordnet-base`")
    corpus = tmp_path_factory.mktemp("research-corpus")
    for name, text in PAGES.items():
        (corpus / name).write_text(text, encoding="utf-8")
    return Deps(ResourceConfig(index_dir=tmp_path_factory.mktemp("research-index"), corpus_path=corpus))


def sub_spans(outcome: Any, request_id: str) -> list[dict[str, Any]]:
    return [s for s in outcome.spans if s.get("request_id") == request_id]


def test_research_answers_from_both_sources_with_a_verdict_per_cited_sentence(deps: Deps) -> None:
    outcome = run_pipeline("research", [{"id": "idem", "text": QUESTION}], deps=deps)
    (result,) = outcome.results
    assert result.status == "ok", result.error
    assert outcome.dead_letters == [] and outcome.duplicates == []
    assert result.route[:3] == ["parse", "docs-search", "wordnet-search"]
    assert result.route[3] == "gather" and result.route[-3:] == ["collect", "synthesis", "factcheck"]
    assert result.route.count("extract") >= 2 and len(result.output["findings"]) >= 2  # one map branch per top passage

    origins = {c.source.split(":")[0] == "wordnet" for c in result.citations}
    assert origins == {True, False}  # WordNet and the docs are both cited
    assert "wordnet:idempotent.s.01" in {c.source for c in result.citations}
    assert any(c.source == "asyncio-loop.md" for c in result.citations)
    assert result.answer and result.answer.count("[") >= 2

    sources = result.output["sources"]
    assert [s["n"] for s in sources] == list(range(1, len(result.citations) + 1))
    assert [s["source"] for s in sources] == [c.source for c in result.citations]
    check = result.output["factcheck"]
    cited = [s for s in steps.research.text.sentences(result.answer) if "[" in s]
    assert [c["sentence"] for c in check["sentences"]] == cited
    assert check["checked"] == len(cited) and check["unsupported"] == 0  # extractive sentences are the sources' own
    assert all(c["supported"] and c["score"] >= check["threshold"] for c in check["sentences"])
    assert result.output["searched"] == ["docs", "wordnet"] and result.output["sources_missing"] == []
    assert result.output["method"] == "extractive"


def test_without_wordnet_the_join_goes_on_with_the_docs(deps: Deps, tmp_path: Path) -> None:
    data = load_pipeline("research").to_dict()
    for node in data["nodes"]:
        if node["name"] == "wordnet-search":
            node["config"] = {"root": str(tmp_path / "no-wordnet")}
    spec = parse_pipeline(data, "research (no WordNet)")
    outcome = run_pipeline(spec, [{"id": "nownet", "text": QUESTION}], deps=deps)
    (result,) = outcome.results
    assert result.status == "ok", result.error
    assert "wordnet-search (failed)" in result.route and "wordnet-missing" in result.route
    assert outcome.dead_letters == []  # a fallback is not a dead letter
    assert result.citations and all(not c.source.startswith("wordnet:") for c in result.citations)
    (missing,) = result.output["sources_missing"]
    assert missing["origin"] == "wordnet" and "failed" in missing["reason"]
    assert result.output["searched"] == ["docs"]
    failed = [s for s in sub_spans(outcome, "nownet") if s.get("step") == "wordnet-search"]
    assert failed and "wordnet-base" in (failed[0].get("error") or "")


def test_a_question_in_no_words_is_rejected(deps: Deps) -> None:
    (result,) = run_pipeline("research", [{"id": "blank", "text": "?!"}], deps=deps).results
    assert result.status == "rejected" and "question in words" in (result.error or "")
