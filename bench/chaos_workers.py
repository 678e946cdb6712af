"""Worker processes for the kill campaign: start, SIGKILL, restart, and a killer thread on a schedule.

Each worker runs ``python -m streams.cli worker`` from the checkout this file belongs to (its
own ``cwd``), so the code under test is this tree's, whatever is installed in the environment.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

__all__ = ["KillRecord", "Killer", "WorkerPool", "WorkerSlot", "kill_times"]

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class WorkerSlot:
    """One worker position; ``generation`` counts its restarts (the worker name is ``w<index>.<generation>``)."""

    index: int
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    generation: int = 0

    @property
    def name(self) -> str:
        return f"w{self.index}.{self.generation}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass(frozen=True)
class KillRecord:
    """A SIGKILL: seconds after the campaign start, which worker, and when its successor was ready."""

    at_s: float
    worker: str
    pid: int
    restarted_at_s: float
    ready_at_s: float


class WorkerPool:
    """``count`` workers of ``pipeline`` against ``bootstrap``; logs and data dirs under ``run_dir``."""

    def __init__(self, bootstrap: str, pipeline: str, count: int, run_dir: Path, env: dict[str, str] | None = None) -> None:
        self.bootstrap = bootstrap
        self.pipeline = pipeline
        self.run_dir = run_dir
        self.env = env or {}
        self.slots = [WorkerSlot(i) for i in range(count)]
        self._lock = threading.Lock()

    def log_of(self, slot: WorkerSlot) -> Path:
        return self.run_dir / f"worker-{slot.name}.log"

    def start(self, slot: WorkerSlot) -> None:
        from streams.broker import free_port

        slot.port = free_port()
        env = {
            **os.environ,
            **self.env,
            "CONVEYOR_BROKER": self.bootstrap,
            "CONVEYOR_PIPELINE": self.pipeline,
            "CONVEYOR_METRICS_PORT": str(slot.port),
            "CONVEYOR_DATA_DIR": str(self.run_dir / f"data-{slot.index}"),
            "CONVEYOR_WORKER_NAME": slot.name,
        }
        with open(self.log_of(slot), "ab") as log, self._lock:
            slot.proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], cwd=ROOT, env=env,
                                         stdout=log, stderr=subprocess.STDOUT)

    def wait_ready(self, slot: WorkerSlot, timeout_s: float) -> None:
        """Until ``/healthz`` says ready; raises BrokerStartError (naming the log) if it exits or times out."""
        from streams.demo import wait_ready

        assert slot.proc is not None
        wait_ready(slot.port, slot.proc, self.log_of(slot), timeout_s)

    def start_all(self, timeout_s: float) -> None:
        for slot in self.slots:
            self.start(slot)
        for slot in self.slots:
            self.wait_ready(slot, timeout_s)

    def holders(self) -> dict[tuple[str, int], list[str]]:
        """(topic, partition) -> names of the live workers holding it now, from each ``/healthz``."""
        out: dict[tuple[str, int], list[str]] = {}
        for slot in self.slots:
            if not slot.alive():
                continue
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{slot.port}/healthz", timeout=5) as resp:
                    assigned = json.loads(resp.read())["assigned"]
            except (OSError, ValueError, KeyError):
                continue
            for held in assigned.values():
                for tp in held:
                    topic, _, partition = tp.rpartition(":")
                    out.setdefault((topic, int(partition)), []).append(slot.name)
        return out

    def kill(self, slot: WorkerSlot) -> int:
        """SIGKILL the slot's worker and reap it; returns its pid."""
        with self._lock:
            assert slot.proc is not None
            pid = slot.proc.pid
            slot.proc.send_signal(signal.SIGKILL)
            slot.proc.wait()
            slot.generation += 1
        return pid

    def stop_all(self, timeout_s: float = 30.0) -> None:
        """SIGTERM every live worker, wait, SIGKILL what is left (safe to call twice, or from finally)."""
        with self._lock:
            procs = [s.proc for s in self.slots if s.proc is not None and s.proc.poll() is None]
        for proc in procs:
            proc.terminate()
        deadline = time.monotonic() + timeout_s
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def kill_times(duration_s: float, kills: int) -> list[float]:
    """``kills`` moments spread evenly over ``duration_s``, none at its ends: d/(k+1), 2d/(k+1), ..."""
    return [duration_s * (i + 1) / (kills + 1) for i in range(kills)]


class Killer(threading.Thread):
    """At each of ``at_s`` (seconds after ``t0``), SIGKILL a random live worker, restart it after
    ``restart_after_s``, and wait until it is ready before the next kill (so a kill never finds
    every worker down). An exception ends the thread and is kept in ``error``."""

    def __init__(self, pool: WorkerPool, at_s: list[float], t0: float, rng: random.Random,
                 restart_after_s: float = 3.0, ready_timeout_s: float = 120.0) -> None:
        super().__init__(name="chaos-killer", daemon=True)
        self.pool = pool
        self.at_s = at_s
        self.t0 = t0
        self.rng = rng
        self.restart_after_s = restart_after_s
        self.ready_timeout_s = ready_timeout_s
        self.done: list[KillRecord] = []
        self.error: BaseException | None = None
        self.stopping = threading.Event()

    def run(self) -> None:
        try:
            for at in self.at_s:
                if self.stopping.wait(max(0.0, self.t0 + at - time.monotonic())):
                    return
                self.done.append(self._kill_and_restart())
        except BaseException as exc:  # noqa: BLE001 - reported by the campaign as a harness failure
            self.error = exc

    def _kill_and_restart(self) -> KillRecord:
        slot = self.rng.choice([s for s in self.pool.slots if s.alive()])
        killed_at = time.monotonic() - self.t0
        victim = slot.name
        pid = self.pool.kill(slot)
        if self.stopping.wait(self.restart_after_s):
            return KillRecord(killed_at, victim, pid, float("nan"), float("nan"))
        restarted_at = time.monotonic() - self.t0
        self.pool.start(slot)
        self.pool.wait_ready(slot, self.ready_timeout_s)
        return KillRecord(killed_at, victim, pid, restarted_at, time.monotonic() - self.t0)
