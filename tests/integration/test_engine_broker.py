"""The engine on the real broker: join timeouts, a SIGKILL mid-join and mid-loop, backoff isolation, DLQ replay."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.app import Settings
from streams.client import Client
from streams.replay import replay
from tests.integration.conftest import exchange, read_topic, wait_for

pytestmark = pytest.mark.integration
FLOWS = Path(__file__).resolve().parent / "flows"


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"




def test_join_with_a_slow_branch_goes_ahead_at_its_timeout(own_broker: Any, start_worker: Any) -> None:
    start_worker(own_broker, "--pipeline", "timeout.yaml", cwd=FLOWS).wait_ready()
    late, quick = uid("late"), uid("quick")
    results = exchange(own_broker.bootstrap, [
        {"id": late, "text": "x", "pipeline": "jointimeout", "metadata": {"slow_s": 8}},
        {"id": quick, "text": "x", "pipeline": "jointimeout", "metadata": {"slow_s": 0}},
    ])
    print(f"join: both branches in {results[quick].latency_ms:.0f} ms end to end (ingress, split, 2 parallel branches, "
          f"join); slow branch late: fired at its 2 s timeout, {results[late].latency_ms:.0f} ms end to end")
    assert results[quick].status == "ok" and results[quick].output == {"got": ["fast", "slow"], "missing": []}
    # the join fired at its 2 s timeout although no message arrived then; the slow branch came later
    assert results[late].status == "ok" and results[late].output == {"got": ["fast"], "missing": ["slow"]}
    assert 2000 <= results[late].latency_ms < 8000, results[late].latency_ms
    time.sleep(7)  # the late branch arrives after the join fired: ignored, no second result
    ids = [orjson.loads(v)["id"] for _, v in read_topic(own_broker.bootstrap, "conveyor.results")]
    assert ids.count(late) == 1


def test_sigkill_mid_join_and_mid_loop_still_one_result_each(own_broker: Any, start_worker: Any) -> None:
    a = start_worker(own_broker, "--pipeline", "durable.yaml", cwd=FLOWS).wait_ready()
    ids = [uid("durable") for _ in range(6)]

    async def publish() -> dict[Any, int]:
        async with Client(Settings(broker=own_broker.bootstrap)) as client:
            start = await client.positions("conveyor.results")
            # a deadline far beyond the restart: the test is about durability, not about how fast this box recovers
            await client.publish([{"id": i, "text": "x", "pipeline": "durable", "session": i, "deadline_ms": 600_000,
                                   "metadata": {"slow_s": 4 if n % 2 else 0}} for n, i in enumerate(ids)])
            return start

    start = asyncio.run(publish())

    def half_joined() -> bool:
        buffers = a.state("join-buffer").get("gather", {})
        waiting = [b for b in buffers.values() if not b["value"]["fired"]]
        return len(waiting) >= 2  # slow branches still out: these joins are half full

    wait_for(half_joined, 60, "joins with one branch in")
    a.stop(signal.SIGKILL)
    killed_at = time.monotonic()
    b = start_worker(own_broker, "--pipeline", "durable.yaml", cwd=FLOWS).wait_ready()

    async def collect() -> dict[str, Any]:
        async with Client(Settings(broker=own_broker.bootstrap)) as client:
            return await client.results(ids, start, 120)

    results = asyncio.run(collect())
    recovery_s = time.monotonic() - killed_at
    print(f"all {len(ids)} results {recovery_s:.1f}s after the SIGKILL (restart, recovery and the remaining work)")
    for rid in ids:
        r = results[rid]
        assert r.status == "ok" and r.output["got"] == ["fast", "slow"] and r.output["rounds"] == 4, r
        assert r.route[-1] == "judge (limit)"
    time.sleep(3)
    outcomes: dict[str, set[tuple[str, str]]] = {rid: set() for rid in ids}
    copies: Counter[str] = Counter()
    for _, v in read_topic(own_broker.bootstrap, "conveyor.results"):
        body = orjson.loads(v)
        if body["id"] in outcomes:
            outcomes[body["id"]].add((body["status"], str(body["output"])))
            copies[body["id"]] += 1
    print(f"results per request: {dict(copies)}")
    # one final result per request: never two different ones (identical re-sends are at-least-once's right)
    assert all(len(o) == 1 for o in outcomes.values()), outcomes
    assert b.proc.poll() is None


def test_backoff_of_one_request_does_not_delay_others_on_its_partition(own_broker: Any, start_worker: Any) -> None:
    start_worker(own_broker, "--pipeline", "backoff.yaml", cwd=FLOWS).wait_ready()
    flaky = uid("flaky")
    # the flaky request and the others share one session: one partition, and one dispatcher slot (concurrency 1)
    others = [uid("other") for _ in range(8)]
    results = exchange(own_broker.bootstrap, [{"id": flaky, "text": "flaky", "pipeline": "backoff", "session": "s-flaky"}]
                       + [{"id": i, "text": "fine", "pipeline": "backoff", "session": f"s-{n}"} for n, i in enumerate(others)])
    waited = results[flaky].latency_ms
    quick = sorted(results[i].latency_ms for i in others)
    print(f"flaky request: {waited:.0f} ms (Retry-After 3 s); the 8 others on the same node: "
          f"p50 {quick[len(quick) // 2]:.0f} ms, max {quick[-1]:.0f} ms")
    assert results[flaky].status == "ok" and waited >= 3000
    assert all(results[i].status == "ok" for i in others)
    assert quick[-1] < waited  # every other request finished while the flaky one waited for its retry


def test_dlq_replay_republishes_each_dead_letter_once(broker: Any, worker: Any) -> None:
    rid = uid("replay")
    since = time.time()

    async def go() -> tuple[Any, Any, Any]:
        async with Client(Settings(broker=broker.bootstrap)) as client:
            await client.publish_raw(orjson.dumps({"id": rid, "tenant": "r"}))  # no text: dead-lettered at ingress
        from datetime import datetime, timezone

        when = datetime.fromtimestamp(since, tz=timezone.utc)
        settings = Settings(broker=broker.bootstrap)
        await asyncio.sleep(3)
        dry = await replay(settings, step="ingress", since=when, dry_run=True)
        first = await replay(settings, step="ingress", since=when)
        again = await replay(settings, step="ingress", since=when)
        return dry, first, again

    dry, first, again = asyncio.run(go())
    mine = [d for d in first.replayed if d.request_id == rid]
    assert [d.request_id for d in dry.replayed if d.request_id == rid] == [rid]
    assert len(mine) == 1 and mine[0].topic == "conveyor.requests"
    assert (mine[0].partition, mine[0].offset) not in [(d.partition, d.offset) for d in again.replayed]
    assert again.already >= 1
    copies = sum(1 for _, v in read_topic(broker.bootstrap, "conveyor.requests") if rid.encode() in v)
    replays = [d for d in first.replayed + again.replayed if d.request_id == rid]
    # the original, plus one republish per dead letter (the replayed request was dead-lettered again: a new letter)
    assert copies == 1 + len(replays) and len({(d.partition, d.offset) for d in replays}) == len(replays)


def test_replayed_step_failure_runs_the_step_again(own_broker: Any, start_worker: Any, fake_llm: Any) -> None:
    start_worker(own_broker, CONVEYOR_LLM_PROVIDER="openai", CONVEYOR_LLM_BASE_URL=fake_llm.base_url,
                 CONVEYOR_LLM_MODEL="ok").wait_ready()
    rid = uid("refused")
    (first,) = exchange(own_broker.bootstrap, [{"id": rid, "text": "How do I sort a list? please-fail"}]).values()
    assert first.status == "failed"

    def letters() -> list[Any]:
        from streams.envelope import DeadLetter

        return [d for d in (DeadLetter.model_validate_json(v) for _, v in read_topic(own_broker.bootstrap, "conveyor.dlq"))
                if d.request_id == rid and d.step == "generation"]

    assert len(letters()) == 1
    report = asyncio.run(replay(Settings(broker=own_broker.bootstrap), step="generation"))
    assert [d.request_id for d in report.replayed] == [rid]
    # the generation step ran the replayed message again (it did not skip it as done): a second attempt, a new letter
    assert wait_for(lambda: len(letters()) == 2, 60, "the replayed message to be handled again")
