"""Runtime overhead: Conveyor's pipeline of pass-through steps against a raw aiokafka chain, side by side.

Both move the same JSON request through five hops on the same embedded broker, in one run, with
repetitions interleaved (Conveyor, raw, Conveyor, raw, ...):

- conveyor: ``conveyor worker --pipeline echo`` in a subprocess: ingress + four ``echo`` steps
  (envelope decode/validate/encode, request-state table, spans, cost ledger, metrics);
- raw: five ``getmany → orjson → add a field → send`` loops in this process, one consumer group each.

Reported: throughput on a blast of N messages, end-to-end latency at a paced low rate, and the ratio.
Run: ``conveyor bench`` (or ``python bench/overhead.py --n 2000``). Not a test: nothing asserts on time.
``BENCH_CONCURRENCY='{"ingress": 64, "e1": 64, ...}'`` overrides the worker's ``CONVEYOR_CONCURRENCY``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson

HOPS = 5


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


async def raw_chain(bootstrap: str, prefix: str, stop: asyncio.Event) -> None:
    """Five hops: prefix.0 → prefix.1 → ... → prefix.5, each its own group, sharing one producer."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()

    async def hop(i: int) -> None:
        consumer = AIOKafkaConsumer(f"{prefix}.{i}", bootstrap_servers=bootstrap, group_id=f"{prefix}-hop{i}",
                                    enable_auto_commit=False, auto_offset_reset="earliest", fetch_max_wait_ms=50,
                                    session_timeout_ms=6000, heartbeat_interval_ms=1000)
        await consumer.start()
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=100, max_records=2000)
                sends = []
                for records in batches.values():
                    for r in records:
                        body = orjson.loads(r.value)
                        body[f"hop{i}"] = True
                        sends.append(await producer.send(f"{prefix}.{i + 1}", orjson.dumps(body), key=r.key))
                if sends:
                    await asyncio.gather(*sends)
                    await consumer.commit()
        finally:
            await consumer.stop()

    try:
        await asyncio.gather(*(hop(i) for i in range(HOPS)))
    finally:
        await producer.stop()


async def drive(bootstrap: str, source: str, sink: str, n: int, rate: float | None, pipeline: str | None) -> dict[str, Any]:
    """Send n messages to ``source`` (blast, or paced at ``rate``/s) and wait for all n on ``sink``."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    run = uuid.uuid4().hex[:6]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    tps = [TopicPartition(sink, p) for p in await producer.partitions_for(sink)]  # by name: auto-creates it
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=20)
    await consumer.start()
    consumer.assign(tps)
    ends = await consumer.end_offsets(tps)
    for tp in tps:
        consumer.seek(tp, ends[tp])
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    seen: set[str] = set()
    done = asyncio.Event()

    async def collect() -> None:
        while len(seen) < n:
            for records in (await consumer.getmany(timeout_ms=100)).values():
                now = time.time()
                for r in records:
                    rid = orjson.loads(r.value)["id"]
                    if rid in sent_at and rid not in seen:
                        seen.add(rid)
                        latencies.append(now - sent_at[rid])
        done.set()

    collector = asyncio.create_task(collect())
    start = time.time()
    futures = []
    for i in range(n):
        rid = f"b-{run}-{i}"
        body: dict[str, Any] = {"id": rid, "text": "How do I reverse a list?", "session": f"s{i % 64}"}
        if pipeline:
            body["pipeline"] = pipeline
        sent_at[rid] = time.time()
        futures.append(await producer.send(source, orjson.dumps(body), key=f"default/s{i % 64}".encode()))
        if rate:
            await asyncio.sleep(1 / rate)
    await asyncio.gather(*futures)
    await asyncio.wait_for(done.wait(), timeout=600)
    elapsed = time.time() - start
    await collector
    await producer.stop()
    await consumer.stop()
    return {"n": n, "elapsed_s": elapsed, "msg_s": n / elapsed, "p50_ms": percentile(latencies, 0.5) * 1000,
            "p95_ms": percentile(latencies, 0.95) * 1000}


def start_worker(bootstrap: str, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    from streams.demo import spawn_worker, wait_ready

    concurrency = os.environ.get("BENCH_CONCURRENCY", '{"e1": 32, "e2": 32, "e3": 32, "e4": 32}')
    proc, port = spawn_worker(bootstrap, log, CONVEYOR_PIPELINE="echo", CONVEYOR_CONCURRENCY=concurrency,
                              CONVEYOR_DATA_DIR=str(log.parent / "data"))
    try:
        wait_ready(port, proc, log, 120)
    except Exception:
        proc.kill()
        raise
    return proc, port


async def bench(bootstrap: str, n: int, paced: int, rate: float, reps: int) -> list[dict[str, Any]]:
    prefix = f"raw-{uuid.uuid4().hex[:4]}"
    stop = asyncio.Event()
    chain = asyncio.create_task(raw_chain(bootstrap, prefix, stop))
    await drive(bootstrap, f"{prefix}.0", f"{prefix}.{HOPS}", 20, None, None)  # warm-up: groups joined
    await drive(bootstrap, "conveyor.requests", "conveyor.results", 20, None, "echo")
    rows = []
    for rep in range(reps):
        for name in (("conveyor", "raw") if rep % 2 == 0 else ("raw", "conveyor")):
            src, sink, pipe = (("conveyor.requests", "conveyor.results", "echo") if name == "conveyor"
                               else (f"{prefix}.0", f"{prefix}.{HOPS}", None))
            blast = await drive(bootstrap, src, sink, n, None, pipe)
            low = await drive(bootstrap, src, sink, paced, rate, pipe)
            rows.append({"config": name, "rep": rep, **{f"blast_{k}": v for k, v in blast.items()},
                         **{f"paced_{k}": v for k, v in low.items()}})
            print(f"  rep {rep} {name:<9} blast {blast['msg_s']:8.0f} msg/s   paced p50 {low['p50_ms']:7.1f} ms "
                  f"p95 {low['p95_ms']:7.1f} ms", flush=True)
    stop.set()
    await chain
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="messages per blast")
    parser.add_argument("--paced", type=int, default=100, help="messages in the paced (low-load) run")
    parser.add_argument("--rate", type=float, default=50.0, help="paced rate, msg/s")
    parser.add_argument("--reps", type=int, default=2)
    args = parser.parse_args(argv)

    from streams.broker import EmbeddedBroker, free_port

    run_dir = Path(".conveyor") / "bench"
    run_dir.mkdir(parents=True, exist_ok=True)
    broker = EmbeddedBroker(free_port(), log_path=run_dir / "broker.log").start()
    proc, port = start_worker(broker.bootstrap, run_dir / "worker.log")
    try:
        time.sleep(5)  # groups settle (joins wait session_timeout/2 on the embedded broker)
        print(f"{HOPS} hops, blast of {args.n}, paced {args.paced} at {args.rate:.0f}/s, {args.reps} reps (interleaved)")
        rows = asyncio.run(bench(broker.bootstrap, args.n, args.paced, args.rate, args.reps))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            exposition = resp.read().decode()
    finally:
        proc.terminate()
        proc.wait(30)
        broker.stop()
    med = {c: {k: statistics.median(r[k] for r in rows if r["config"] == c)
               for k in ("blast_msg_s", "paced_p50_ms", "paced_p95_ms")} for c in ("conveyor", "raw")}
    print("\n| config | blast msg/s (median) | paced e2e p50 | paced e2e p95 |")
    print("|---|---|---|---|")
    for c in ("conveyor", "raw"):
        m = med[c]
        print(f"| {c} | {m['blast_msg_s']:.0f} | {m['paced_p50_ms']:.1f} ms | {m['paced_p95_ms']:.1f} ms |")
    from streams.report import histogram_p50

    work = histogram_p50([exposition], "conveyor_step_processing_seconds")
    queue = histogram_p50([exposition], "conveyor_step_queue_seconds")
    print("\nconveyor per step, all runs (from /metrics): " + ", ".join(
        f"{step} work p50 {work[step] * 1000:.1f} ms / queue p50 {queue[step] * 1000:.0f} ms" for step in sorted(work)))
    ratio = med["conveyor"]["blast_msg_s"] / med["raw"]["blast_msg_s"]
    print(f"\nthroughput ratio conveyor/raw: {ratio:.3f}; per-hop paced p50: conveyor "
          f"{med['conveyor']['paced_p50_ms'] / HOPS:.1f} ms, raw {med['raw']['paced_p50_ms'] / HOPS:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
