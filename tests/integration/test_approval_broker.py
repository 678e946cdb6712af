"""Human approval on the real broker: parked across a SIGKILL, answered by the CLI and by librdkafka, expiry."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.app import Settings
from streams.client import Client
from tests.integration.conftest import wait_for

pytestmark = pytest.mark.integration
FLOWS = Path(__file__).resolve().parent / "flows"


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def conveyor(bootstrap: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONVEYOR_BROKER": bootstrap, "USER": "alice"}
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def all_results(bootstrap: str) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        async with Client(Settings(broker=bootstrap)) as client:
            return [orjson.loads(v) for _, v in await client.read_to_end("conveyor.results")]

    return asyncio.run(go())


def test_parked_approvals_survive_sigkill_and_resume_on_decisions(own_broker: Any, start_worker: Any) -> None:
    flows = ("--pipeline", "approval.yaml", "--pipeline", "approval_expiry.yaml")
    a = start_worker(own_broker, *flows, cwd=FLOWS).wait_ready()
    yes, no, late = uid("yes"), uid("no"), uid("late")

    async def publish() -> None:
        async with Client(Settings(broker=own_broker.bootstrap)) as client:
            await client.publish([
                {"id": yes, "text": "order 1", "pipeline": "refund", "deadline_ms": 30_000},
                {"id": no, "text": "order 2", "pipeline": "refund", "deadline_ms": 30_000},
            ])

    asyncio.run(publish())

    def pending() -> set[str]:
        return {r["id"] for r in all_results(own_broker.bootstrap) if r["status"] == "pending_approval"}

    wait_for(lambda: {yes, no} <= pending(), 60, "both requests parked")
    listed = conveyor(own_broker.bootstrap, "approvals")
    assert listed.returncode == 0 and yes in listed.stdout and "Refund order 1" in listed.stdout, listed

    a.stop(signal.SIGKILL)  # parked requests live in the changelogged table, not in the process
    start_worker(own_broker, *flows, cwd=FLOWS).wait_ready()

    approved = conveyor(own_broker.bootstrap, "approve", yes, "--yes", "--comment", "refund ok")
    assert approved.returncode == 0, approved.stderr
    assert f"approved {yes}" in approved.stdout and "by alice" in approved.stdout
    again = conveyor(own_broker.bootstrap, "approve", "never-asked", "--no")
    assert again.returncode == 1 and "no approval was asked for request 'never-asked'" in again.stderr
    assert "Traceback" not in again.stderr

    # another Kafka client, with librdkafka's own partitioner, answers the second one
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": own_broker.bootstrap})
    producer.produce("conveyor.approvals", key=no.encode(),
                     value=orjson.dumps({"id": no, "decision": "reject", "by": "bob", "comment": "duplicate claim"}))
    assert producer.flush(30) == 0

    async def publish_late() -> None:
        async with Client(Settings(broker=own_broker.bootstrap)) as client:
            await client.publish([{"id": late, "text": "order 3", "pipeline": "quickrefund"}])

    asyncio.run(publish_late())

    def finals() -> dict[str, dict[str, Any]]:
        out = {r["id"]: r for r in all_results(own_broker.bootstrap) if r["status"] != "pending_approval"}
        return out if {yes, no, late} <= set(out) else {}

    got = wait_for(finals, 90, "three final results")
    assert got[yes]["status"] == "ok", got[yes]
    assert got[yes]["output"]["approval"]["by"] == "alice"
    assert got[yes]["output"]["approval"]["comment"] == "refund ok"
    assert got[yes]["output"]["hops"] == 2
    assert got[no]["status"] == "rejected" and "review" in got[no]["error"]
    assert got[late]["status"] == "ok" and got[late]["output"]["approval"]["decision"] == "expired"
    assert got[late]["route"][-2] == "review (expired by timeout)"
    decided_twice = conveyor(own_broker.bootstrap, "approve", yes, "--no")
    assert decided_twice.returncode == 1 and "already decided: approve by alice" in decided_twice.stderr
    copies = [r["status"] for r in all_results(own_broker.bootstrap) if r["id"] == yes]
    assert copies.count("ok") >= 1 and set(copies) <= {"pending_approval", "ok"}, copies
