"""The ``research`` pipeline's steps: parse, search two sources in parallel, merge and rank, extract findings
(a map), synthesize a cited answer, fact-check it. Importing this package registers them.

Reading order: :mod:`.parse` → :mod:`.search` (with :mod:`.wordnet` and :mod:`.bm25`) → :mod:`.rank` →
:mod:`.findings` → :mod:`.synthesis` → :mod:`.factcheck` (with :mod:`.verify`, whose threshold is tuned
on ``tests/data/factcheck_tune.jsonl``). The pipeline is ``streams/pipelines/research.yaml``.
"""

from steps.research.factcheck import ResearchFactCheck
from steps.research.findings import ResearchExtract, research_collect
from steps.research.parse import research_parse
from steps.research.rank import ResearchMerge
from steps.research.search import DocsSearch, SourceUnavailable, WordNetSearch
from steps.research.synthesis import ResearchSynthesis
from steps.research.wordnet import WordNetMissingError

__all__ = [
    "DocsSearch",
    "ResearchExtract",
    "ResearchFactCheck",
    "ResearchMerge",
    "ResearchSynthesis",
    "SourceUnavailable",
    "WordNetMissingError",
    "WordNetSearch",
    "research_collect",
    "research_parse",
]
