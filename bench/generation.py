"""Generation latency in-process: the extractive generator before and after issue 8, side by side.

Both generators answer the same doc questions (the answers eval sets) from the same retrieved
passages (retrieved once, by the retrieval step over the real Python-docs index), in one run, with
repetitions interleaved (before, after, before, after, ...). Each repetition starts from a fresh
provider (empty sentence-vector cache) and the embedder's worker thread, as a worker has it:

- sequential: one request at a time (the in-process cost of one request);
- concurrent: ``--concurrency`` requests at once, as the demo publishes its 12 requests together
  (the embedder coalesces concurrent calls into one batch).

"before" is ``steps/providers.py`` as it is at ``--before`` (a git revision), loaded from git into
its own module; "after" is the working tree's. Reported: p50/p95 per request, and the embedder's
texts per request. Run: ``python bench/generation.py`` (``--reps``, ``--limit``, ``--before``).
Not a test: nothing asserts on time.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def providers_at(revision: str) -> types.ModuleType:
    """``steps/providers.py`` as it was at ``revision``, as a module of its own."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{revision}:steps/providers.py"],
                            check=True, capture_output=True, text=True).stdout
    spec = importlib.util.spec_from_loader(f"providers_{revision.replace('/', '_')}", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    exec(compile(source, f"{revision}:steps/providers.py", "exec"), module.__dict__)  # noqa: S102 - our own history
    return module


def questions(limit: int) -> list[str]:
    data = ROOT / "tests" / "data" / "eval"
    rows = [json.loads(line) for name in ("answers_tune.jsonl", "answers_test.jsonl")
            for line in (data / name).read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r["question"] for r in rows][:limit]


class Counting:
    """The real embedder, counting the texts it embeds."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.model_id, self.dim = real.model_id, real.dim
        self.texts = 0

    def embed(self, texts: list[str]) -> Any:
        self.texts += len(texts)
        return self.real.embed(texts)

    def count_tokens(self, text: str) -> int:
        return int(self.real.count_tokens(text))


async def retrieve_all(deps: Any, qs: list[str]) -> list[list[dict[str, Any]]]:
    from steps.base import StepContext
    from steps.registry import resolve

    retrieval = resolve("retrieval").build({})
    await retrieval.warm_up(deps)
    out = []
    for i, q in enumerate(qs):
        found = await retrieval.run(retrieval.Input(text=q), StepContext(request_id=f"bench-{i}"))
        out.append([p.model_dump() for p in found.passages])
    return out


async def one_rep(module: types.ModuleType, embedder: Any, qs: list[str], passages: list[list[dict[str, Any]]],
                  concurrency: int) -> dict[str, Any]:
    from steps.embedding import AsyncEmbedder

    counting = Counting(embedder)
    provider = module.ExtractiveProvider(AsyncEmbedder(counting))

    async def timed(q: str, ps: list[dict[str, Any]]) -> float:
        start = time.perf_counter()
        await provider.generate(module.GenerationRequest(question=q, passages=ps))
        return (time.perf_counter() - start) * 1000

    sequential = [await timed(q, ps) for q, ps in zip(qs, passages, strict=True)]
    texts_per_request = counting.texts / len(qs)
    provider = module.ExtractiveProvider(AsyncEmbedder(counting))  # cold again for the concurrent pass
    concurrent: list[float] = []
    for start in range(0, len(qs), concurrency):
        group = list(zip(qs, passages, strict=True))[start : start + concurrency]
        concurrent += await asyncio.gather(*(timed(q, ps) for q, ps in group))
    return {"sequential": sequential, "concurrent": concurrent, "texts": texts_per_request}


async def main(args: argparse.Namespace) -> None:
    from tests.evals import docs_deps

    deps: Any = docs_deps()
    qs = questions(args.limit)
    passages = await retrieve_all(deps, qs)
    embedder = deps.embedder.embedder
    import steps.providers as after

    configs = {f"before ({args.before})": providers_at(args.before), "after (working tree)": after}
    results: dict[str, dict[str, list[float]]] = {name: {"sequential": [], "concurrent": [], "texts": []} for name in configs}
    for rep in range(args.reps):
        for name, module in configs.items():
            r = await one_rep(module, embedder, qs, passages, args.concurrency)
            for key in ("sequential", "concurrent"):
                results[name][key] += r[key]
            results[name]["texts"].append(r["texts"])
            print(f"rep {rep + 1} {name}: sequential p50 {statistics.median(r['sequential']):.1f} ms, "
                  f"concurrent p50 {statistics.median(r['concurrent']):.1f} ms", flush=True)
    print(f"\n{len(qs)} questions x {args.reps} reps; concurrency {args.concurrency}\n")
    print("| generator | sequential p50 | sequential p95 | concurrent p50 | concurrent p95 | texts embedded per request |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {statistics.median(r['sequential']):.1f} ms | {percentile(r['sequential'], 0.95):.1f} ms | "
              f"{statistics.median(r['concurrent']):.1f} ms | {percentile(r['concurrent'], 0.95):.1f} ms | "
              f"{statistics.mean(r['texts']):.1f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--limit", type=int, default=106, help="questions taken from the answers eval sets")
    parser.add_argument("--concurrency", type=int, default=12, help="requests at once in the concurrent pass")
    parser.add_argument("--before", default="main", help="git revision whose steps/providers.py is 'before'")
    asyncio.run(main(parser.parse_args()))
