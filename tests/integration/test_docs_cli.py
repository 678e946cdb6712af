"""README examples and the CLI, run for real against the session broker and worker."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration


def readme_python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", Path("README.md").read_text(), re.S)


def test_readme_any_client_example_runs(broker: Any, worker: Any) -> None:
    (block,) = [b for b in readme_python_blocks() if "confluent_kafka" in b]
    rid = f"readme-{uuid.uuid4().hex[:6]}"
    code = (block.replace("localhost:9092", broker.bootstrap).replace('"r-1"', f'"{rid}"')
            .replace('"my-app"', f'"readme-{rid}"'))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "[1]" in out.stdout  # the answer, with its citation


def test_cli_ask_prints_answer_citations_and_steps(broker: Any, worker: Any) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "streams.cli", "ask", "How do I send an email with smtplib?", "--broker", broker.bootstrap],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "status: ok" in out.stdout and "[1] library/smtplib.html" in out.stdout
    rows = [line.split()[0] for line in out.stdout.splitlines() if line.endswith("|")]
    assert rows == ["classification", "retrieval", "generation", "safety"], out.stdout


def test_cli_publish_and_results(broker: Any, worker: Any, tmp_path: Path) -> None:
    rid = f"cli-{uuid.uuid4().hex[:6]}"
    (tmp_path / "reqs.jsonl").write_text(f'{{"id": "{rid}", "text": "Hello!"}}\n')
    pub = subprocess.run([sys.executable, "-m", "streams.cli", "publish", str(tmp_path / "reqs.jsonl"), "--broker", broker.bootstrap],
                         capture_output=True, text=True, timeout=60)
    assert pub.returncode == 0 and pub.stdout.strip() == rid, pub.stderr
    for _ in range(30):
        res = subprocess.run([sys.executable, "-m", "streams.cli", "results", "--broker", broker.bootstrap],
                             capture_output=True, text=True, timeout=60)
        if rid in res.stdout:
            break
    assert f'"id":"{rid}","status":"ok"' in res.stdout


def test_cli_usage_errors_exit_2() -> None:
    out = subprocess.run([sys.executable, "-m", "streams.cli", "worker", "--broker", "no-port"], capture_output=True, text=True)
    assert out.returncode == 2 and "HOST:PORT" in out.stderr


def listening(port: int) -> bool:
    """Whether any socket on this machine listens on ``port`` (TCP state 0A in /proc/net/tcp{,6})."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def test_cli_broker_starts_is_detected_and_stops_cleanly() -> None:
    import asyncio
    import signal
    import time

    from streams.broker import free_port, port_open
    from streams.tansu import EMBEDDED_CLUSTER_ID, cluster_id, is_embedded

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "broker", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not port_open("127.0.0.1", port) and time.monotonic() < deadline:
            time.sleep(0.1)
        servers = [f"127.0.0.1:{port}"]
        assert asyncio.run(cluster_id(servers)) == EMBEDDED_CLUSTER_ID
        assert asyncio.run(is_embedded("auto", servers)) and not asyncio.run(is_embedded("no", servers))
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    # the port is free once the command returns: nothing listens on it. (/proc, not a connect: a
    # connect to a free port in the ephemeral range can, rarely, connect to itself and look open)
    assert not listening(port)


def test_cli_index_builds_a_users_folder(tmp_path: Path) -> None:
    import os

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "deploy.md").write_text("# Deploying\n\n" + "Run conveyor worker on each host to add capacity. " * 8)
    (docs / "faq.rst").write_text("FAQ\n===\n\n" + "Results are keyed by request id on conveyor.results. " * 8)
    env = {**os.environ, "CONVEYOR_INDEX_DIR": str(tmp_path / "idx")}
    out = subprocess.run([sys.executable, "-m", "streams.cli", "index", str(docs)], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert re.search(r"^2 passages indexed", out.stdout, re.M) and "CONVEYOR_CORPUS=" in out.stdout


def test_cli_trace_prints_a_waterfall(broker: Any, worker: Any) -> None:
    from tests.integration.conftest import exchange

    rid = f"wf-{uuid.uuid4().hex[:6]}"
    exchange(broker.bootstrap, [{"id": rid, "text": "What is a list comprehension?"}])
    out = subprocess.run([sys.executable, "-m", "streams.cli", "trace", rid, "--broker", broker.bootstrap],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"request {rid}" in out.stdout and "4 spans" in out.stdout
    rows = [line.split()[0] for line in out.stdout.splitlines() if "|" in line]
    assert rows == ["classification", "retrieval", "generation", "safety"]
    missing = subprocess.run([sys.executable, "-m", "streams.cli", "trace", "nope", "--broker", broker.bootstrap, "--timeout", "1"],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "no spans" in missing.stderr


def test_cli_up_runs_broker_and_worker_and_stops_both(tmp_path: Path, corpus_dir: Path, built_index: Path) -> None:
    import json
    import os
    import signal
    import time
    import urllib.request

    from streams.broker import free_port, port_open
    from tests.integration.conftest import exchange, worker_env

    port, metrics = free_port(), free_port()
    env = {**os.environ, **worker_env(corpus_dir, built_index, tmp_path / "data")}
    proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "up", "--port", str(port), "--metrics-port", str(metrics)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/healthz", timeout=1) as r:
                    if json.loads(r.read())["ready"]:
                        break
            except OSError:
                time.sleep(0.3)
        (result,) = exchange(f"127.0.0.1:{port}", [{"text": "Hello!"}]).values()
        assert result.status == "ok"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
    assert not port_open("127.0.0.1", port) and not port_open("127.0.0.1", metrics)
