"""A vector index over passages: exact inner-product search with numpy, cached on disk.

Exact search costs about 4.5 ms per query at 100k vectors on this class of machine
(../shared/research/models.md §e), so no ANN library is needed at knowledge-base scale.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from steps.corpus import PYTHON_DOCS, PYTHON_DOCS_EXCLUDE, Passage, corpus_fingerprint, folder_passages, stdlib_passages
from steps.embedding import Embedder

__all__ = ["INDEX_VERSION", "Hit", "IndexNotFoundError", "VectorIndex", "default_corpus", "load_or_build"]

log = logging.getLogger(__name__)

# Part of the cache key: bump it when what a passage holds changes, so stale indexes are rebuilt.
# 2: API directives qualified with module and class, carried into passages cut from an API's body.
# 3: such passages also repeat the API's first paragraph (what it does).
INDEX_VERSION = 3


class IndexNotFoundError(FileNotFoundError):
    """No index on disk: build one with `conveyor index PATH` (or let the worker build the default)."""


@dataclass(frozen=True)
class Hit:
    """A retrieved passage and its cosine similarity to the query."""

    source: str
    title: str
    text: str
    score: float


class VectorIndex:
    """Unit-norm passage vectors plus their metadata; ``search`` is exact top-k by cosine."""

    def __init__(self, vectors: np.ndarray, passages: list[Passage], model_id: str, corpus: str) -> None:
        if len(vectors) != len(passages):
            raise ValueError(f"{len(vectors)} vectors for {len(passages)} passages")
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.passages = passages
        self.model_id = model_id
        self.corpus = corpus

    def __len__(self) -> int:
        return len(self.passages)

    @classmethod
    def build(cls, passages: list[Passage], embedder: Embedder, corpus: str) -> VectorIndex:
        texts = [f"{p.title}\n{p.text}" for p in passages]
        return cls(embedder.embed(texts), passages, embedder.model_id, corpus)

    def search(self, query: np.ndarray, k: int = 5) -> list[Hit]:
        if not self.passages:
            return []
        scores = self.vectors @ query.astype(np.float32)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return [Hit(**asdict(self.passages[i]), score=float(scores[i])) for i in top]

    def save(self, directory: Path) -> None:
        """Write atomically: a worker starting meanwhile sees the old index or the new one."""
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".index-", dir=directory.parent))
        np.save(tmp / "vectors.npy", self.vectors)
        meta = {"model_id": self.model_id, "corpus": self.corpus, "passages": [asdict(p) for p in self.passages]}
        (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        if directory.exists():
            old = directory.with_name(directory.name + ".old")
            os.replace(directory, old)
            os.replace(tmp, directory)
            for f in old.iterdir():
                f.unlink()
            old.rmdir()
        else:
            os.replace(tmp, directory)

    @classmethod
    def load(cls, directory: Path) -> VectorIndex:
        if not (directory / "meta.json").is_file():
            raise IndexNotFoundError(f"no index at {directory}: run `conveyor index PATH` to build one")
        meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
        vectors = np.load(directory / "vectors.npy")
        passages = [Passage(**p) for p in meta["passages"]]
        return cls(vectors, passages, meta["model_id"], meta["corpus"])


def default_corpus() -> tuple[str, Path | None]:
    """(description, folder) of the default knowledge base; folder is None for the stdlib fallback."""
    if PYTHON_DOCS.is_dir():
        return f"Python 3.11 documentation ({PYTHON_DOCS})", PYTHON_DOCS
    return "Python standard-library docstrings (python3.11-doc is not installed)", None


def load_or_build(cache_dir: Path, embedder: Embedder, corpus_path: Path | None = None) -> VectorIndex:
    """The index of ``corpus_path`` (default corpus when None), from the cache or built once and saved."""
    if corpus_path is None:
        description, corpus_path = default_corpus()
    else:
        description = str(corpus_path)
    exclude: tuple[str, ...] = ()
    if corpus_path is None:
        key = f"stdlib-{embedder.model_id}-v{INDEX_VERSION}"
    else:
        if not corpus_path.is_dir():
            raise IndexNotFoundError(f"{corpus_path} is not a folder of Markdown/reST/HTML/text files")
        if corpus_path == PYTHON_DOCS:
            exclude = PYTHON_DOCS_EXCLUDE
        key = f"{corpus_path.name or 'root'}-{corpus_fingerprint(corpus_path, exclude)}-{embedder.model_id}-v{INDEX_VERSION}"
    directory = cache_dir / key
    try:
        return VectorIndex.load(directory)
    except IndexNotFoundError:
        pass
    passages = stdlib_passages() if corpus_path is None else folder_passages(corpus_path, exclude)
    log.warning("building the retrieval index of %s: %d passages (once; cached in %s)", description, len(passages), directory)
    index = VectorIndex.build(passages, embedder, description)
    index.save(directory)
    return index
