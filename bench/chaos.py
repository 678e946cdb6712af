"""Kill campaign: requests paced from outside while workers are SIGKILLed and restarted; count what is lost.

On its own embedded broker: ``--workers`` ``conveyor worker --pipeline <pipeline>`` processes; a
librdkafka (confluent-kafka) producer publishes ``--requests`` requests over ``--sessions`` sessions
at ``--rate`` per second, keyed by session; meanwhile ``--kills`` times, evenly spread over the
publishing, a random worker is SIGKILLed and restarted ``--restart-after`` seconds later (the next
kill waits until it is ready again). Then ``conveyor.results`` is read back until every request is
answered, or the pipeline is idle (every group committed its whole input, twice in a row), or no new
result came for ``--quiet`` seconds, or ``--cap`` seconds passed.

Reported: published, answered, lost, conflicting, duplicates, wrong (meanings in
``bench/chaos_view.py``), the kills, wall time, and for every lost request where it stopped: the
last input topic/partition/offset it reached, whether that step emitted a span for it, and that
step's group committed offset for the partition.

Run: ``conveyor bench chaos`` (or ``python bench/chaos.py --requests 2000 --kills 2``). Not a test:
it exits 0 whatever it counts; 1 only if the campaign itself could not run. ``CONVEYOR_*``
variables in the environment reach the workers (e.g. ``CONVEYOR_CONCURRENCY``).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import this checkout's packages, not an installed copy
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.chaos_kafka import publish_paced
from bench.chaos_view import Diagnosis, PipelineView, Tally, diagnose_all, pipeline_inputs, tally
from bench.chaos_workers import Killer, KillRecord, WorkerPool, kill_times

__all__ = ["CampaignConfig", "CampaignError", "CampaignResult", "main", "run_campaign"]

Log = Callable[[str], None]


class CampaignError(RuntimeError):
    """The campaign itself failed (broker, workers, publishing); the message names the log to read."""


@dataclass(frozen=True)
class CampaignConfig:
    requests: int = 10_000
    sessions: int = 200
    rate: float = 40.0
    workers: int = 2
    kills: int = 3
    pipeline: str = "echo"
    seed: int | None = None
    restart_after_s: float = 3.0
    ready_timeout_s: float = 180.0
    quiet_s: float = 60.0  # safety cap: stop when no new result arrived for this long
    cap_s: float = 900.0  # safety cap on the whole wait for results
    settle_s: float = 2.0  # between two reads of the results and the committed offsets
    worker_env: Mapping[str, str] = field(default_factory=dict)


@dataclass
class CampaignResult:
    published: int
    answered: int
    lost: list[str]
    conflicting: list[str]
    duplicates: int
    wrong: list[str]
    unexpected: int
    publish_failed: int
    kills: list[KillRecord]
    wall_s: float
    stop_reason: str
    seed: int
    run_dir: Path
    diagnoses: list[Diagnosis] = field(default_factory=list)

    def summary(self) -> str:
        return (f"lost={len(self.lost)} conflicting={len(self.conflicting)} duplicates={self.duplicates} "
                f"wrong={len(self.wrong)} published={self.published} answered={self.answered} "
                f"kills={len(self.kills)} wall={self.wall_s:.1f}s seed={self.seed}")

    def explain(self, limit: int = 5) -> str:
        """The summary and the diagnosis of the first ``limit`` lost ids (for assertion messages)."""
        lines = [self.summary(), f"stopped: {self.stop_reason}; logs in {self.run_dir}"]
        lines += [_diagnosis_line(d) for d in self.diagnoses[:limit]]
        if self.conflicting:
            lines.append(f"conflicting ids (first {limit}): {self.conflicting[:limit]}")
        if self.wrong:
            lines.append(f"wrong ids (first {limit}): {self.wrong[:limit]}")
        return "\n".join(lines)


def _diagnosis_line(d: Diagnosis) -> str:
    if d.topic is None:
        return f"{d.request_id}: {d.verdict}"
    span = "-" if d.span is None else ("yes" if d.span else "no")
    return (f"{d.request_id}: last on {d.topic}[{d.partition}]@{d.offset}, group of {d.component} committed "
            f"{d.committed}, span {span}, held by {_holders(d)}: {d.verdict}")


def _holders(d: Diagnosis) -> str:
    return ",".join(d.holders) or "nobody"


def pipeline_spec(name: str) -> Any:
    from streams.errors import GraphError
    from streams.pipeline_file import load_pipeline

    try:
        return load_pipeline(name)
    except GraphError as exc:
        raise CampaignError(str(exc)) from None


def make_requests(config: CampaignConfig, rng: random.Random, run_id: str) -> list[dict[str, Any]]:
    """``config.requests`` requests, each in a random one of ``config.sessions`` sessions (4 tenants)."""
    out = []
    for i in range(config.requests):
        s = rng.randrange(config.sessions)
        out.append({"id": f"c-{run_id}-{i:06d}", "text": f"request {i} in session {s}", "tenant": f"t{s % 4}",
                    "session": f"s-{run_id}-{s:04d}", "pipeline": config.pipeline})
    return out


def expected_outcome(pipeline: str) -> Callable[[Mapping[str, Any]], tuple[Any, ...] | None]:
    """The right (status, answer) where it is known: echo answers with the request's text."""
    if pipeline == "echo":
        return lambda request: ("ok", request["text"])
    return lambda request: None


def wait_for_results(view: PipelineView, expected: set[str], config: CampaignConfig, log: Log) -> str:
    """Read until every id in ``expected`` has a result, the pipeline is idle twice in a row, or a cap.

    Idle: at two reads ``settle_s`` apart, every group's committed offset equals the end of its
    input topic, and no topic grew in between. A component commits a message only after what it
    produced was acknowledged, so everything committed has its output among what was read, and
    nothing is left to consume: a request without a result then will never get one. (The runtime
    bug this campaign looks for, committing over a message not yet acknowledged, ends exactly there.)
    """
    started = last_result = last_log = time.monotonic()
    answered = 0
    previous_ends: dict[tuple[str, int], int] | None = None
    while True:
        view.refresh()
        now = time.monotonic()
        if len(view.results) > answered:
            answered, last_result = len(view.results), now
        if expected <= view.results.keys():
            return "every request answered"
        ends = view.ends()
        unsettled = view.unsettled(view.committed())
        if not unsettled and ends == previous_ends:  # nothing more can come: see the docstring
            return "pipeline idle: every group committed exactly its whole input, twice in a row, nothing new"
        previous_ends = None if unsettled else ends
        if now - last_result > config.quiet_s:
            return f"no new result for {config.quiet_s:.0f} s"
        if now - started > config.cap_s:
            return f"cap of {config.cap_s:.0f} s reached"
        if now - last_log >= 10:
            log(f"  waiting: {len(expected & view.results.keys())}/{len(expected)} answered; "
                f"committed/end not settled: {', '.join(unsettled) or 'none'}")
            last_log = now
        time.sleep(config.settle_s)


def _publish_under_fire(config: CampaignConfig, pool: WorkerPool, bootstrap: str, requests: list[dict[str, Any]],
                        rng: random.Random, log: Log) -> tuple[list[str], dict[str, str], list[KillRecord]]:
    t0 = time.monotonic()
    killer = Killer(pool, kill_times(len(requests) / config.rate, config.kills), t0, rng,
                    restart_after_s=config.restart_after_s, ready_timeout_s=config.ready_timeout_s)
    killer.start()
    try:
        report = publish_paced(bootstrap, "conveyor.requests", requests, config.rate,
                               key_of=lambda r: f"{r['tenant']}/{r['session']}")
        log(f"published {len(report.acked)} in {report.elapsed_s:.1f}s ({len(report.failed)} refused); "
            "waiting for the last restart")
        killer.join()
    finally:
        killer.stopping.set()
        killer.join(timeout=30)
    if killer.error is not None:
        raise CampaignError(f"killing/restarting workers failed: {killer.error} (logs in {pool.run_dir})") from killer.error
    for k in killer.done:
        log(f"  kill at {k.at_s:.1f}s: {k.worker} (pid {k.pid}), restarted at {k.restarted_at_s:.1f}s, ready at {k.ready_at_s:.1f}s")
    return report.acked, report.failed, killer.done


def run_campaign(config: CampaignConfig, run_dir: Path, log: Log = lambda line: None) -> CampaignResult:
    """Run one kill campaign on a broker and workers of its own (all stopped before returning)."""
    from streams.broker import EmbeddedBroker

    spec = pipeline_spec(config.pipeline)
    seed = config.seed if config.seed is not None else random.randrange(1_000_000)
    rng = random.Random(seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    broker = EmbeddedBroker(log_path=run_dir / "broker.log")
    pool = WorkerPool(broker.bootstrap, spec.name, config.workers, run_dir, dict(config.worker_env))
    view: PipelineView | None = None
    try:
        broker.start()
        pool.start_all(config.ready_timeout_s)
        log(f"broker {broker.bootstrap}, {config.workers} workers ready after {time.monotonic() - started:.1f}s")
        requests = make_requests(config, rng, uuid.uuid4().hex[:6])
        acked, refused, kills = _publish_under_fire(config, pool, broker.bootstrap, requests, rng, log)
        view = PipelineView(broker.bootstrap, pipeline_inputs(spec))
        acked_ids = set(acked)
        published = {r["id"]: r for r in requests if r["id"] in acked_ids}
        reason = wait_for_results(view, set(published), config, log)
        committed = view.committed()
        t = tally(published, view.results, expected_outcome(spec.name))
        return _result(t, len(refused), kills, time.monotonic() - started, reason, seed, run_dir,
                       diagnose_all(t.lost, view, committed, pool.holders()), len(published))
    except Exception as exc:
        if isinstance(exc, CampaignError):
            raise
        raise CampaignError(f"{type(exc).__name__}: {exc} (logs in {run_dir})") from exc
    finally:
        if view is not None:
            view.close()
        pool.stop_all()
        broker.stop()


def _result(t: Tally, refused: int, kills: list[KillRecord], wall_s: float, reason: str, seed: int, run_dir: Path,
            diagnoses: list[Diagnosis], published: int) -> CampaignResult:
    return CampaignResult(published=published, answered=len(t.answered), lost=t.lost, conflicting=t.conflicting,
                          duplicates=t.duplicates, wrong=t.wrong, unexpected=t.unexpected, publish_failed=refused,
                          kills=kills, wall_s=wall_s, stop_reason=reason, seed=seed, run_dir=run_dir,
                          diagnoses=diagnoses)


def print_report(result: CampaignResult) -> None:
    print(f"\nstopped waiting: {result.stop_reason}")
    print(f"published {result.published} (refused by the broker: {result.publish_failed}), answered {result.answered}, "
          f"results for unknown ids: {result.unexpected}")
    if result.diagnoses:
        print("\n| lost request | last on | partition | offset | group committed | span | held by | diagnosis |")
        print("|---|---|---|---|---|---|---|---|")
        for d in result.diagnoses:
            span = "-" if d.span is None else ("yes" if d.span else "no")
            print(f"| {d.request_id} | {d.topic or '-'} | {_dash(d.partition)} | {_dash(d.offset)} | "
                  f"{_dash(d.committed)} | {span} | {_holders(d)} | {d.verdict} |")
        by_kind = Counter((d.component or "-", d.verdict) for d in result.diagnoses)
        print("\nlost by step and diagnosis: " + "; ".join(f"{c}: {n} {v}" for (c, v), n in sorted(by_kind.items())))
    if result.conflicting:
        print(f"conflicting ids: {' '.join(result.conflicting[:20])}{' ...' if len(result.conflicting) > 20 else ''}")
    if result.wrong:
        print(f"wrong ids: {' '.join(result.wrong[:20])}{' ...' if len(result.wrong) > 20 else ''}")
    print(result.summary())


def _dash(value: int | None) -> str:
    return "-" if value is None else str(value)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/chaos.py", description=(__doc__ or "").splitlines()[0])
    d = CampaignConfig()
    parser.add_argument("--requests", type=int, default=d.requests)
    parser.add_argument("--sessions", type=int, default=d.sessions)
    parser.add_argument("--rate", type=float, default=d.rate, help="requests per second")
    parser.add_argument("--workers", type=int, default=d.workers)
    parser.add_argument("--kills", type=int, default=d.kills)
    parser.add_argument("--pipeline", default=d.pipeline)
    parser.add_argument("--seed", type=int, default=None, help="sessions and victims (default: random, printed)")
    parser.add_argument("--restart-after", type=float, default=d.restart_after_s, help="seconds from kill to restart")
    parser.add_argument("--quiet", type=float, default=d.quiet_s, help="stop after this many seconds without a new result")
    parser.add_argument("--cap", type=float, default=d.cap_s, help="stop waiting for results after this many seconds")
    parser.add_argument("--run-dir", type=Path, default=None, help="logs (default .conveyor/chaos/<time>)")
    args = parser.parse_args(argv)
    if min(args.requests, args.sessions, args.workers) < 1 or args.kills < 0 or args.rate <= 0:
        parser.error("--requests, --sessions, --workers and --rate must be positive, --kills at least 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    config = CampaignConfig(requests=args.requests, sessions=args.sessions, rate=args.rate, workers=args.workers,
                            kills=args.kills, pipeline=args.pipeline, seed=seed, restart_after_s=args.restart_after,
                            quiet_s=args.quiet, cap_s=args.cap)
    run_dir = args.run_dir or Path(".conveyor") / "chaos" / time.strftime("%Y%m%d-%H%M%S")
    print(f"command: python bench/chaos.py --requests {config.requests} --sessions {config.sessions} --rate {config.rate:g} "
          f"--workers {config.workers} --kills {config.kills} --pipeline {config.pipeline} --seed {seed} "
          f"--restart-after {config.restart_after_s:g} --quiet {config.quiet_s:g} --cap {config.cap_s:g}", flush=True)
    print(f"logs: {run_dir}", flush=True)
    try:
        result = run_campaign(config, run_dir, log=lambda line: print(line, flush=True))
    except CampaignError as exc:
        print(f"chaos: the campaign could not run: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("chaos: interrupted; broker and workers stopped", file=sys.stderr)
        return 130
    print_report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
