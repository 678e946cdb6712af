"""Tenants cannot see each other, PII stays off the record, nothing vanishes, state expires (real broker)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from typing import Any

import orjson
import pytest

from streams.app import Settings
from streams.client import Client
from streams.envelope import DeadLetter, Result
from streams.errors import MessageTooLargeError
from tests.integration.conftest import exchange, read_topic, wait_for

pytestmark = pytest.mark.integration

CARD, EMAIL = "4111 1111 1111 1111", "jane.doe@example.com"


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"




def test_sessions_of_different_tenants_never_share_history(broker: Any, worker: Any) -> None:
    """tenant acme + session team/s9 and tenant acme/team + session s9 once shared one history."""
    tag = uuid.uuid4().hex[:6]
    first = {"text": f"How do I sort a list? ({tag})", "tenant": "acme", "session": f"team/s9-{tag}"}
    second = {"text": "And in reverse order?", "tenant": "acme/team", "session": f"s9-{tag}"}
    exchange(broker.bootstrap, [first])
    exchange(broker.bootstrap, [second])
    history = worker.state("session-history")["generation"]
    a = history[f"acme/team%2Fs9-{tag}"]["value"]
    b = history[f"acme%2Fteam/s9-{tag}"]["value"]
    assert [t["question"] for t in a] == [first["text"]]
    assert [t["question"] for t in b] == [second["text"]]  # the second tenant's turn sees only its own history


def test_an_id_reused_by_another_tenant_is_a_new_request(broker: Any, worker: Any) -> None:
    rid = uid("shared")

    async def go() -> list[Result]:
        async with Client(Settings(broker=broker.bootstrap)) as client:
            start = await client.positions("conveyor.results")
            await client.publish([{"id": rid, "text": "How do I sort a list?", "tenant": "t-one"}])
            first = await client.results([rid], start, 90, tenants={rid: "t-one"})
            await client.publish([{"id": rid, "text": "What is a generator?", "tenant": "t-two"}])
            second = await client.results([rid], start, 90, tenants={rid: "t-two"})
            return [first[rid], second[rid]]

    one, two = asyncio.run(go())
    assert (one.tenant, two.tenant) == ("t-one", "t-two")
    assert one.status == two.status == "ok"
    assert one.answer != two.answer  # each tenant got the answer to its own question


def test_pii_stays_out_of_history_spans_dead_letters_and_logs(own_broker: Any, start_worker: Any, fake_llm: Any) -> None:
    w = start_worker(own_broker, CONVEYOR_LLM_PROVIDER="openai", CONVEYOR_LLM_BASE_URL=fake_llm.base_url,
                     CONVEYOR_LLM_MODEL="ok").wait_ready()
    session = uid("pii")
    ok_id, bad_id = uid("pii-ok"), uid("pii-bad")
    results = exchange(own_broker.bootstrap, [
        {"id": ok_id, "text": f"My card is {CARD} and my email is {EMAIL}. How do I sort a list?", "tenant": "p",
         "session": session},
    ])
    results |= exchange(own_broker.bootstrap, [
        {"id": bad_id, "text": f"Reach me at {EMAIL}, card {CARD}. please-fail", "tenant": "p", "session": session},
    ])
    assert results[ok_id].status == "ok" and results[bad_id].status == "failed"
    kept = {
        "history": orjson.dumps(w.state("session-history")).decode(),
        "request-state": orjson.dumps(w.state("request-state")).decode(),
        "traces": "".join(v.decode() for _, v in read_topic(own_broker.bootstrap, "conveyor.traces")),
        "dlq": "".join(v.decode() for _, v in read_topic(own_broker.bootstrap, "conveyor.dlq")),
        "changelog": "".join(v.decode("utf-8", "replace") for _, v in
                             read_topic(own_broker.bootstrap, "conveyor-support-generation-session-history-changelog")),
        "log": w.log.read_text(errors="replace"),
    }
    assert session in kept["history"] and bad_id in kept["dlq"]  # the records are there...
    for where, text in kept.items():
        assert EMAIL not in text and CARD not in text, f"raw PII in {where}"  # ...without the raw values
    letter = next(DeadLetter.model_validate_json(v) for _, v in read_topic(own_broker.bootstrap, "conveyor.dlq")
                  if bad_id in v.decode())
    assert set(letter.redacted) >= {"email", "credit_card"} and "[EMAIL]" in letter.value


def test_a_message_of_several_mb_is_dead_lettered_truncated(broker: Any, worker: Any) -> None:
    from aiokafka import AIOKafkaProducer

    big_id, wide_id, after_id = uid("big"), uid("wide"), uid("after")
    big = orjson.dumps({"id": big_id, "text": "x" * 3_000_000})  # 3 MB: the broker takes it, our producers could not
    wide = orjson.dumps({"id": wide_id, "text": "hi", "metadata": {f"k{i}": "v" for i in range(100_000)}})

    async def go() -> tuple[dict[str, Result], list[DeadLetter]]:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, max_request_size=8_000_000)
        await producer.start()
        async with Client(Settings(broker=broker.bootstrap)) as client:
            results_at, dlq_at = await client.positions("conveyor.results"), await client.positions("conveyor.dlq")
            try:
                await producer.send_and_wait("conveyor.requests", big)
                await producer.send_and_wait("conveyor.requests", wide)
            finally:
                await producer.stop()
            with pytest.raises(MessageTooLargeError, match="CONVEYOR_MAX_MESSAGE_BYTES"):
                await client.publish([{"id": uid("refused"), "text": "y" * 1_200_000}])
            await client.publish([{"id": after_id, "text": "How do I sort a list?"}])
            results = await client.results([big_id, wide_id, after_id], results_at, 90)
            letters = [DeadLetter.model_validate_json(v) async for _, v in client.read("conveyor.dlq", dlq_at, 3)]
            return results, letters

    results, letters = asyncio.run(go())
    assert results[after_id].status == "ok"  # the worker kept serving
    assert results[big_id].status == "rejected" and "over the limit" in (results[big_id].error or "")
    assert results[wide_id].status == "rejected" and "CONVEYOR_MAX_MESSAGE_BYTES" in (results[wide_id].error or "")
    by_id = {d.request_id: d for d in letters}
    for rid, raw in ((big_id, big), (wide_id, wide)):
        letter = by_id[rid]
        assert letter.truncated and letter.size == len(raw) and letter.sha256 == hashlib.sha256(raw).hexdigest()
        assert raw.decode().startswith(letter.value) and 0 < len(letter.value) <= 2048
        assert letter.topic == "conveyor.requests" and letter.offset >= 0


def test_unserved_pipeline_is_rejected_and_a_second_workers_pipeline_is_answered(own_broker: Any, start_worker: Any) -> None:
    support = start_worker(own_broker, CONVEYOR_WORKER_NAME="support-only").wait_ready()
    rejected_id = uid("echo-early")
    (early,) = exchange(own_broker.bootstrap, [{"id": rejected_id, "text": "hi", "pipeline": "echo"}]).values()
    assert early.status == "rejected" and "no running worker serves pipeline 'echo'" in (early.error or "")
    echo = start_worker(own_broker, "--pipeline", "echo", CONVEYOR_WORKER_NAME="echo-only").wait_ready()

    def ingress_split() -> bool:  # both workers' ingress apps hold partitions: the group has settled
        held = [json.loads(w.get("/healthz"))["assigned"].get("conveyor-ingress", []) for w in (support, echo)]
        return all(held) and len(held[0]) + len(held[1]) == 4

    wait_for(ingress_split, 90, "the ingress group to rebalance over both workers")
    ids = {uid("echo"): "echo", uid("sup"): "support", uid("none"): "nope"}
    results = exchange(own_broker.bootstrap, [{"id": i, "text": "hello there", "pipeline": p} for i, p in ids.items()])
    for rid, pipeline in ids.items():
        if pipeline == "nope":
            assert results[rid].status == "rejected" and "'nope'" in (results[rid].error or "")
        else:
            assert results[rid].status == "ok", results[rid]
    echo_answer = next(results[i] for i, p in ids.items() if p == "echo")
    assert echo_answer.route == ["e1", "e2", "e3", "e4"]
    assert support.proc.poll() is None


def test_request_state_shrinks_back_after_requests_finish(own_broker: Any, start_worker: Any) -> None:
    w = start_worker(own_broker, "--pipeline", "echo", CONVEYOR_STATE_TTL_S="5", CONVEYOR_SWEEP_INTERVAL_S="1").wait_ready()
    n = 40
    exchange(own_broker.bootstrap, [{"text": f"hi {i}", "pipeline": "echo", "tenant": f"t{i % 3}"} for i in range(n)])

    def keys() -> int:
        return sum(len(v) for v in w.state("request-state").values()) + sum(len(v) for v in w.state("ledger-seen").values())

    assert keys() > 0  # the requests left state behind...
    wait_for(lambda: keys() == 0, 60, "request-state and ledger-seen to expire")  # ...and it expired
    tombstones = [v for k, v in read_topic(own_broker.bootstrap, "conveyor-echo-e1-request-state-changelog") if v is None]
    assert len(tombstones) == n  # deleted from the changelog too, not only from memory
    metrics = w.get("/metrics").decode()
    assert 'conveyor_table_keys{component="e1",table="request-state"} 0.0' in metrics
