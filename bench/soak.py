"""Soak: does a worker's memory and state stay flat over a long run? (``conveyor bench soak``)

One ``conveyor worker --pipeline echo`` on its own embedded broker; N requests published at a
steady rate over many sessions and tenants; every ``--every`` seconds the worker's RSS (from
``/proc``) and its table sizes (``conveyor_table_keys`` on ``/metrics``) are sampled, with how many
results came back. Prints one row per sample and the RSS slope per request over the second half
of the run (after warm-up and after the first expiries).

Run: ``conveyor bench soak --requests 50000 --rate 150 --ttl 60`` (or ``python bench/soak.py``).
Not a test: nothing asserts on time or memory.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streams.broker import EmbeddedBroker  # noqa: E402
from streams.demo import spawn_worker, wait_ready  # noqa: E402

KEYS = re.compile(r'^conveyor_table_keys\{component="([^"]+)",table="([^"]+)"\} ([0-9.e+]+)$', re.M)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def table_keys(port: int) -> dict[str, int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out: dict[str, int] = {}
    for _, table, value in KEYS.findall(text):
        out[table] = out.get(table, 0) + int(float(value))
    if not out:  # a worker older than conveyor_table_keys: count what /state shows
        import json

        for table in ("request-state", "cost-ledger"):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/state/{table}", timeout=5) as resp:
                    out[table] = sum(len(v) for v in json.loads(resp.read()).values())
            except OSError:
                pass
    return out


async def publish(bootstrap: str, n: int, rate: float, sessions: int, counter: dict[str, int]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        started = time.monotonic()
        for i in range(n):
            s = i % sessions
            body = {"id": f"soak-{i}-{uuid.uuid4().hex[:6]}", "text": f"request {i}", "tenant": f"t{s % 20}",
                    "session": f"s{s}", "pipeline": "echo"}
            await producer.send("conveyor.requests", orjson.dumps(body), key=f"t{s % 20}/s{s}".encode())
            counter["published"] = i + 1
            delay = started + (i + 1) / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        await producer.flush()
    finally:
        await producer.stop()


async def count_results(bootstrap: str, counter: dict[str, int], stop: asyncio.Event) -> None:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer("conveyor.results", bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=f"soak-{uuid.uuid4().hex[:6]}", session_timeout_ms=6000,
                                heartbeat_interval_ms=1000, fetch_max_wait_ms=200)
    await consumer.start()
    seen: set[str] = set()
    try:
        while not stop.is_set():
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    seen.add(orjson.loads(r.value)["id"])
            counter["answered"] = len(seen)
    finally:
        await consumer.stop()


async def sample(pid: int, port: int, counter: dict[str, int], every: float, done: asyncio.Event) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    started = time.monotonic()
    print(f"{'t':>6} {'published':>10} {'answered':>9} {'rss MB':>8}  tables (keys)", flush=True)
    while True:
        keys = await asyncio.to_thread(table_keys, port)
        row = {"t": time.monotonic() - started, "published": counter["published"], "answered": counter["answered"],
               "rss_mb": rss_mb(pid), "keys": keys}
        rows.append(row)
        print(f"{row['t']:6.0f} {row['published']:10d} {row['answered']:9d} {row['rss_mb']:8.1f}  "
              + " ".join(f"{k}={v}" for k, v in sorted(keys.items())), flush=True)
        if done.is_set():
            return rows
        try:
            await asyncio.wait_for(done.wait(), every)
        except asyncio.TimeoutError:
            pass


async def campaign(args: argparse.Namespace, bootstrap: str, pid: int, port: int) -> list[dict[str, Any]]:
    counter = {"published": 0, "answered": 0}
    stop, done = asyncio.Event(), asyncio.Event()
    reader = asyncio.ensure_future(count_results(bootstrap, counter, stop))
    sampler = asyncio.ensure_future(sample(pid, port, counter, args.every, done))
    await publish(bootstrap, args.requests, args.rate, args.sessions, counter)
    deadline = time.monotonic() + 120
    while counter["answered"] < args.requests and time.monotonic() < deadline:
        await asyncio.sleep(1)
    await asyncio.sleep(args.ttl + 2 * args.every)  # let the last entries expire and be swept
    done.set()
    rows = await sampler
    stop.set()
    await reader
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--rate", type=float, default=150.0, help="requests per second")
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--ttl", type=float, default=60.0, help="CONVEYOR_STATE_TTL_S and CONVEYOR_SESSION_TTL_S of the worker")
    parser.add_argument("--every", type=float, default=15.0, help="seconds between samples")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped: still stop the worker and the broker
    print(f"$ conveyor bench soak --requests {args.requests} --rate {args.rate:g} --sessions {args.sessions} "
          f"--ttl {args.ttl:g} --every {args.every:g}", flush=True)
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker(log_path=Path(tmp) / "broker.log") as broker:
        log = Path(tmp) / "worker.log"
        env = {"CONVEYOR_PIPELINE": "echo", "CONVEYOR_DATA_DIR": str(Path(tmp) / "data"),
               "CONVEYOR_STATE_TTL_S": str(args.ttl), "CONVEYOR_SESSION_TTL_S": str(args.ttl),
               "CONVEYOR_SWEEP_INTERVAL_S": str(max(1.0, args.ttl / 6)),
               "CONVEYOR_DEFAULT_DEADLINE_MS": "600000"}
        proc, port = spawn_worker(broker.bootstrap, log, **env)
        try:
            wait_ready(port, proc, log, 120)
            rows = asyncio.run(campaign(args, broker.bootstrap, proc.pid, port))
        finally:
            proc.terminate()
            proc.wait(30)
    half = [r for r in rows if r["published"] >= args.requests / 2]
    if len(half) >= 2 and half[-1]["published"] > half[0]["published"]:
        slope = (half[-1]["rss_mb"] - half[0]["rss_mb"]) * 1024 / (half[-1]["published"] - half[0]["published"])
        print(f"RSS slope over the second half: {slope:+.3f} kB per request "
              f"({half[0]['rss_mb']:.1f} → {half[-1]['rss_mb']:.1f} MB); "
              f"answered {rows[-1]['answered']}/{args.requests}; final table keys {rows[-1]['keys']}")


if __name__ == "__main__":
    main()
