"""Shared fixtures: a small real corpus, warmed steps, and an OpenAI-compatible server on loopback."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from steps import Deps, ResourceConfig, resolve
from steps.corpus import PYTHON_DOCS
from tests.loopback import LoopbackChatServer

CORPUS_FILES = (
    "library/json.rst.txt",
    "library/subprocess.rst.txt",
    "library/smtplib.rst.txt",
    "tutorial/datastructures.rst.txt",
    "tutorial/errors.rst.txt",
    "howto/sorting.rst.txt",
    "reference/compound_stmts.rst.txt",
)


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few real pages of the Python 3.11 docs (Debian's python3.11-doc), copied to a temp folder."""
    if not PYTHON_DOCS.is_dir():
        raise RuntimeError(
            f"{PYTHON_DOCS} is missing: run `make test`, which installs Debian's python3.11-doc, "
            "or `apt-get install python3.11-doc`"
        )
    root = tmp_path_factory.mktemp("corpus")
    for rel in CORPUS_FILES:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(PYTHON_DOCS / rel, root / rel)
    return root


@pytest.fixture(scope="session")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("index")


@pytest.fixture(scope="session")
def warm(corpus_dir: Path, index_dir: Path) -> dict[str, Any]:
    """The built-in steps' runners (as the worker builds them), warmed once on real models and the small real corpus."""
    deps = Deps(ResourceConfig(index_dir=index_dir, corpus_path=corpus_dir))
    runners = {name: resolve(name).build({}) for name in ("classification", "retrieval", "generation", "safety")}

    async def go() -> None:
        for runner in runners.values():
            await runner.warm_up(deps)

    asyncio.run(go())
    return {"deps": deps, **runners}


class FakeLLM(LoopbackChatServer):
    """An OpenAI-compatible chat-completions server on 127.0.0.1, run in a thread.

    The requested model name picks the behaviour: ``ok`` answers citing [1]; ``flaky`` fails
    with 503 on its first two calls; ``refuse`` answers 400; ``slow`` sleeps 2 s; ``hang`` sleeps
    30 s; ``ratelimited`` answers 429 with ``Retry-After: 1``, then succeeds only for a call that
    waited the second out (a call too early gets another 429), then limits again; ``leaky`` (500) and ``leaky-400`` echo the question in
    their error body, the way real servers echo a prompt. A question holding ``please-fail`` is refused
    with 400 whatever the model.
    """

    def __init__(self) -> None:
        super().__init__("fake-llm")
        self.requests: list[dict[str, Any]] = []
        self.calls: dict[str, int] = {}
        self._limited_at: float | None = None  # loop time of the last 429 of ``ratelimited``

    async def completions(self, request: Any) -> Any:
        from aiohttp import web

        body = await request.json()
        self.requests.append(body)
        model = body["model"]
        n = self.calls[model] = self.calls.get(model, 0) + 1
        if model == "flaky" and n <= 2:
            return web.json_response({"error": "overloaded"}, status=503)
        if model == "refuse" or "please-fail" in str(body["messages"][-1]["content"]):
            return web.json_response({"error": {"message": "unknown model"}}, status=400)
        if model == "slow":
            await asyncio.sleep(2)
        if model == "hang":
            await asyncio.sleep(30)
        if model == "ratelimited":
            now = asyncio.get_running_loop().time()
            if self._limited_at is None or now - self._limited_at < 0.95:  # 1 s, less a margin for clocks
                self._limited_at = now
                error = {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}
                return web.json_response(error, status=429, headers={"Retry-After": "1"})
            self._limited_at = None
        if model in ("leaky", "leaky-400"):
            echoed = f"Invalid prompt: {body['messages'][-1]['content']}"
            error = {"error": {"message": echoed, "type": "invalid_request_error", "code": echoed}}
            return web.json_response(error, status=500 if model == "leaky" else 400)
        return web.json_response({
            "id": "cmpl-1", "object": "chat.completion", "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Use reversed() or list.reverse() [1]."},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 120, "completion_tokens": 12, "total_tokens": 132},
        })


@pytest.fixture(scope="session")
def fake_llm() -> Iterator[FakeLLM]:
    server = FakeLLM().start()
    yield server
    server.stop()
