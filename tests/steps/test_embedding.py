"""The async embedder: inference off the event loop, concurrent calls coalesced into batches."""

from __future__ import annotations

import asyncio
import threading

import numpy as np

from steps.embedding import AsyncEmbedder, MiniLMEmbedder


class RecordingEmbedder:
    """A real Embedder implementation (hashed bag of words) that records where and how it was called."""

    model_id = "recording"
    dim = 8

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []  # (thread id, batch size)

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls.append((threading.get_ident(), len(texts)))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for word in t.split():
                out[i, hash(word) % self.dim] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def test_inference_runs_off_the_loop_and_concurrent_calls_share_batches() -> None:
    inner = RecordingEmbedder()
    embedder = AsyncEmbedder(inner)

    async def go() -> tuple[int, list[np.ndarray]]:
        loop_thread = threading.get_ident()
        results = await asyncio.gather(*(embedder.embed([f"text {i}", f"more {i}"]) for i in range(50)))
        return loop_thread, results

    loop_thread, results = asyncio.run(go())
    assert all(thread != loop_thread for thread, _ in inner.calls)
    assert len(inner.calls) < 50 and sum(n for _, n in inner.calls) == 100  # coalesced, nothing lost
    assert all(r.shape == (2, 8) for r in results)
    np.testing.assert_allclose(results[7][0], inner.embed(["text 7"])[0])  # each caller gets its own rows
    embedder.close()


def test_errors_reach_every_waiting_caller() -> None:
    class Broken(RecordingEmbedder):
        def embed(self, texts: list[str]) -> np.ndarray:
            raise RuntimeError("model crashed")

    embedder = AsyncEmbedder(Broken())

    async def go() -> list[BaseException | np.ndarray]:
        return await asyncio.gather(*(embedder.embed(["x"]) for _ in range(3)), return_exceptions=True)

    assert all(isinstance(r, RuntimeError) for r in asyncio.run(go()))


def test_minilm_vectors_are_unit_norm_and_semantic() -> None:
    e = MiniLMEmbedder()
    v = e.embed(["How do I reverse a list?", "Reversing a Python list", "The weather is sunny today"])
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.3
    assert e.count_tokens("hello world " * 200) == 400  # counts are not truncated
