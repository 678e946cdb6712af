"""README's "Write your own step and pipeline": its files, copied out of the README into a folder
outside the repository, run unchanged in-process and on a worker against the real broker."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.readme import snippet

pytestmark = pytest.mark.integration


@pytest.fixture
def flow_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "my-flow"
    folder.mkdir()
    (folder / "mysteps.py").write_text(snippet("# mysteps.py"))
    (folder / "flow.yaml").write_text(snippet("# flow.yaml"))
    return folder


def conveyor(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], cwd=folder, capture_output=True, text=True,
                          timeout=120)


def check_result(result: dict[str, Any]) -> None:
    assert result["status"] == "ok", result
    out = result["output"]
    assert out["summary"] == "hello big world! (3 words)"  # both branches; upper arrived through its fallback
    assert out["words"] == ["hello", "big", "world"]
    assert out["merged"] == ["0:HELLO", "1:BIG", "2:WORLD"]  # every mapped item, in order
    route = result["route"]
    assert "upper (failed)" in route and "upper-plain" in route  # the retried step and the taken fallback
    assert route.count("judge") == 3 and route[-1] == "judge (limit)"  # the loop stopped at its bound


def test_readme_flow_checks_and_runs_in_process(flow_dir: Path) -> None:
    checked = conveyor(flow_dir, "check", "flow.yaml")
    assert checked.returncode == 0 and "is valid" in checked.stdout, checked.stderr
    drawn = conveyor(flow_dir, "graph", "flow.yaml", "--format", "mermaid")
    assert drawn.returncode == 0 and "gather" in drawn.stdout and "==>" in drawn.stdout
    code = ("import json; from streams.testing import run; "
            "print(json.dumps(run('flow.yaml', ['hello big world'])[0].model_dump(mode='json')))")
    ran = subprocess.run([sys.executable, "-c", code], cwd=flow_dir, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr[-2000:]
    check_result(json.loads(ran.stdout.strip().splitlines()[-1]))


def test_readme_flow_errors_are_one_line(flow_dir: Path) -> None:
    flow = flow_dir / "flow.yaml"
    flow.write_text(flow.read_text().replace("step: mysteps:count", "step: mysteps:cuont"))
    bad = conveyor(flow_dir, "check", "flow.yaml")
    assert bad.returncode == 1
    (line,) = bad.stderr.strip().splitlines()
    assert line.startswith("Error: flow.yaml, node 'count', field step:") and "cuont" in line


def test_readme_flow_on_a_worker_answers_a_librdkafka_client(own_broker: Any, start_worker: Any, flow_dir: Path) -> None:
    from confluent_kafka import Consumer, Producer, TopicPartition

    start_worker(own_broker, "--pipeline", "flow.yaml", cwd=flow_dir).wait_ready()
    rid = f"wordy-{uuid.uuid4().hex[:8]}"
    producer = Producer({"bootstrap.servers": own_broker.bootstrap})
    producer.produce("conveyor.requests", json.dumps({"id": rid, "text": "hello big world", "pipeline": "wordy"}))
    assert producer.flush(10) == 0
    consumer = Consumer({"bootstrap.servers": own_broker.bootstrap, "group.id": rid, "session.timeout.ms": 6000,
                         "enable.auto.commit": False})
    meta = consumer.list_topics("conveyor.results", timeout=10)
    consumer.assign([TopicPartition("conveyor.results", p, 0) for p in meta.topics["conveyor.results"].partitions])
    mine: list[dict[str, Any]] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not mine:
        msg = consumer.poll(0.5)
        if msg is not None and not msg.error() and json.loads(msg.value())["id"] == rid:
            mine.append(json.loads(msg.value()))
    consumer.close()
    assert mine, "no result within 120 s"
    check_result(mine[0])
