"""Recovery after SIGKILL, the embedded-broker highwater fix, failing steps, and scaling one step."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from collections import Counter
from typing import Any

import orjson
import pytest

from streams.app import Settings
from streams.client import Client
from streams.envelope import DeadLetter
from streams.tansu import true_highwaters
from tests.integration.conftest import exchange, read_topic, wait_for

pytestmark = pytest.mark.integration




def test_listoffsets_bug_and_the_fetch_highwater_fix(own_broker: Any) -> None:
    """Tansu's ListOffsets(latest) is base offset of the last batch + 1; the Fetch highwater is right."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    topic = f"hw-{uuid.uuid4().hex[:6]}"

    async def go() -> tuple[int, int]:
        producer = AIOKafkaProducer(bootstrap_servers=own_broker.bootstrap, linger_ms=200)
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"first", partition=0)
            batch = [await producer.send(topic, f"m{i}".encode(), partition=0) for i in range(5)]  # one batch
            await asyncio.gather(*batch)
        finally:
            await producer.stop()
        tp = TopicPartition(topic, 0)
        consumer = AIOKafkaConsumer(bootstrap_servers=own_broker.bootstrap)
        await consumer.start()
        try:
            listed = (await consumer.end_offsets([tp]))[tp]
        finally:
            await consumer.stop()
        fixed = (await true_highwaters([own_broker.bootstrap], [tp]))[tp]
        return listed, fixed

    listed, fixed = asyncio.run(go())
    assert fixed == 6  # 6 records: offsets 0..5
    assert listed < fixed  # the broker bug the fix exists for (if this fails, Tansu fixed it: drop the patch)


def test_tables_recover_exactly_after_sigkill(own_broker: Any, start_worker: Any) -> None:
    a = start_worker(own_broker).wait_ready()
    sessions = [f"s{i}-{uuid.uuid4().hex[:6]}" for i in range(3)]
    questions = ["How do I sort a list?", "And in reverse order?", "What is a generator?", "How do I read JSON?"]
    for q in questions:  # one round per question: each session's turns arrive in order
        exchange(own_broker.bootstrap, [{"text": q, "tenant": f"t{i % 2}", "session": s} for i, s in enumerate(sessions)])
    # a burst for one tenant: its ledger changelog gets multi-record batches, the case Tansu mis-reports
    burst = 40
    exchange(own_broker.bootstrap, [{"text": "Hello!", "tenant": "t2"} for _ in range(burst)])

    def ledger_complete() -> dict[str, Any] | None:
        ledger = a.state("cost-ledger")["ledger"]
        done = sum(v["requests"] for v in ledger.values()) == len(questions) * len(sessions) + burst
        return ledger if done else None

    before_ledger = wait_for(ledger_complete, 30, "every cost entry in the ledger")
    before_history = a.state("session-history")["generation"]
    before_requests = a.state("request-state")
    assert len(before_history) == len(sessions) and all(len(v["value"]) == len(questions) for v in before_history.values())
    time.sleep(1.5)  # changelog writes are acknowledged asynchronously; let them land before the kill
    a.stop(signal.SIGKILL)

    b = start_worker(own_broker).wait_ready()

    def recovered() -> bool:
        return (b.state("cost-ledger")["ledger"] == before_ledger
                and b.state("session-history")["generation"] == before_history
                and b.state("request-state") == before_requests)

    wait_for(recovered, 60, "the new worker's tables to equal the old worker's")
    # and it keeps serving, with the recovered history in context
    (r,) = exchange(own_broker.bootstrap, [{"text": "Thanks!", "tenant": "t0", "session": sessions[0]}]).values()
    assert r.status == "ok"
    def turns() -> list[Any] | None:
        value = b.state("session-history")["generation"][f"t0/{sessions[0]}"]["value"]
        return value if len(value) == 5 else None

    assert len(wait_for(turns, 20, "fifth turn")) == 5


def test_failing_step_gives_failed_result_and_dead_letter(own_broker: Any, start_worker: Any, fake_llm: Any) -> None:
    start_worker(own_broker, CONVEYOR_LLM_PROVIDER="openai", CONVEYOR_LLM_BASE_URL=fake_llm.base_url,
                 CONVEYOR_LLM_MODEL="ok", CONVEYOR_PRICES='{"ok": [1.0, 2.0]}').wait_ready()
    good, bad = f"llm-ok-{uuid.uuid4().hex[:6]}", f"llm-bad-{uuid.uuid4().hex[:6]}"
    results = exchange(own_broker.bootstrap, [
        {"id": good, "text": "How do I reverse a list?", "tenant": "llm"},
        {"id": bad, "text": "How do I sort a list? please-fail", "tenant": "llm"},
    ])
    ok, failed = results[good], results[bad]
    assert ok.status == "ok" and ok.answer.startswith("Use reversed()") and ok.usage.input_tokens == 120
    assert ok.usage.cost_usd == pytest.approx(0.000144)
    assert failed.status == "failed" and "FatalStepError" in (failed.error or "") and "400" in failed.error
    assert failed.route == ["classification", "retrieval"]
    letters = [DeadLetter.model_validate_json(v) for _, v in read_topic(own_broker.bootstrap, "conveyor.dlq")]
    (letter,) = [d for d in letters if d.request_id == bad]
    assert letter.step == "generation" and letter.topic == "conveyor.support.generation"
    assert letter.error_class == "FatalStepError" and letter.attempts == 1
    assert orjson.loads(letter.value)["request"]["id"] == bad  # the original message, as it was


def test_generation_scales_on_its_own(own_broker: Any, start_worker: Any) -> None:
    a = start_worker(own_broker, CONVEYOR_WORKER_NAME="A").wait_ready()
    b = start_worker(own_broker, "--steps", "generation", CONVEYOR_WORKER_NAME="B").wait_ready()

    def generation_split() -> bool:  # the generation group rebalanced over both workers
        held = [json.loads(w.get("/healthz"))["assigned"].get("conveyor-support-generation", []) for w in (a, b)]
        return all(held) and sorted(held[0] + held[1]) == [f"conveyor.support.generation:{p}" for p in range(4)]

    wait_for(generation_split, 60, "generation partitions split over both workers")
    requests = [{"id": f"scale-{i}-{uuid.uuid4().hex[:4]}", "text": "How do I sort a list?", "tenant": "scale",
                 "session": f"s-{i}"} for i in range(24)]
    results = exchange(own_broker.bootstrap, requests)
    assert all(r.status == "ok" for r in results.values())
    spans = [orjson.loads(v) for _, v in read_topic(own_broker.bootstrap, "conveyor.traces")]
    ids = {r["id"] for r in requests}
    mine = [s for s in spans if s["request_id"] in ids]
    workers_by_step: dict[str, set[str]] = {}
    for s in mine:
        workers_by_step.setdefault(s["step"], set()).add(s["worker"])
    assert workers_by_step["generation"] == {"A", "B"}, a.log_tail() + b.log_tail()
    assert workers_by_step["classification"] == workers_by_step["safety"] == {"A"}
    per_request = Counter((s["request_id"], s["step"]) for s in mine)
    assert set(per_request.values()) == {1}  # each request processed once per step: by one group member
    results_seen = [orjson.loads(v)["id"] for _, v in read_topic(own_broker.bootstrap, "conveyor.results")]
    assert Counter(i for i in results_seen if i in ids) == Counter(ids)  # exactly one result each


def test_worker_without_broker_fails_with_instructions(tmp_path: Any) -> None:
    import subprocess
    import sys

    from streams.broker import free_port

    env = {"CONVEYOR_BROKER": f"127.0.0.1:{free_port()}", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "streams.cli", "worker"], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 1
    assert "no Kafka broker answers" in out.stderr and "conveyor broker" in out.stderr


def test_client_side_settings(own_broker: Any) -> None:
    async def go() -> list[str]:
        async with Client(Settings(broker=own_broker.bootstrap)) as client:
            return await client.publish([{"text": "hi", "session": "s"}])

    (rid,) = asyncio.run(go())
    assert rid.startswith("r-")
