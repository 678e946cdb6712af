"""The ``conveyor`` command (DESIGN.md §3). Exit 2 for usage errors, 1 for runtime errors."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any, Callable

import click
import orjson

from streams.errors import ConveyorError

__all__ = ["main"]


def settings_from(**flags: Any) -> Any:
    """Settings from flags (when given), then CONVEYOR_* variables, then defaults."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from streams.app import Settings

    try:
        return Settings(**{k: v for k, v in flags.items() if v is not None and v != ()})
    except SettingsError as exc:
        raise click.UsageError(f"{exc}: a CONVEYOR_* variable holds invalid JSON; fix or unset it") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        raise click.UsageError(f"--{'-'.join(str(p) for p in first['loc']).replace('_', '-')}: {first['msg']}") from None


def broker_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--broker", help="HOST:PORT of Kafka (env CONVEYOR_BROKER, default localhost:9092)")(fn)


def run(coro: Any) -> Any:
    from aiokafka.errors import KafkaError

    try:
        return asyncio.run(coro)
    except ConveyorError as exc:
        raise click.ClickException(str(exc)) from None
    except (KafkaError, OSError) as exc:
        raise click.ClickException(
            f"cannot talk to the broker ({type(exc).__name__}: {exc}); start one with `conveyor up` or "
            "`conveyor broker`, or point --broker / CONVEYOR_BROKER at yours"
        ) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Conveyor: AI workflows as Kafka stream processors."""


@cli.command()
@click.option("--port", type=int, default=9092, show_default=True)
def broker(port: int) -> None:
    """Run the embedded Kafka-protocol broker (Tansu, memory-only) in the foreground."""
    from streams.broker import EmbeddedBroker

    import signal

    b = EmbeddedBroker(port)
    # SIGTERM stops it like Ctrl-C: the finally below stops Tansu too, whenever the signal lands
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        b.start()
        click.echo(f"embedded broker on {b.bootstrap} (memory only; Ctrl-C stops it)", err=True)
        b.wait()
    except KeyboardInterrupt:
        pass
    except ConveyorError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        b.stop()


def _worker_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--pipeline", multiple=True,
                      help="pipeline to run: a bundled name (support, echo, research, onboarding, devteam, assistant) or a YAML/JSON file; repeatable (default support)")(fn)
    fn = click.option("--steps", help="comma-separated components to run: ingress, a pipeline node, ledger (default all)")(fn)
    fn = click.option("--metrics-port", type=int, help="port of /metrics (default 9108; 0 picks a free one)")(fn)
    fn = click.option("--metrics-host", help="address /metrics binds (default 127.0.0.1)")(fn)
    fn = click.option("--llm-provider", type=click.Choice(["extractive", "openai"]), help="generation provider")(fn)
    fn = click.option("--log-level", help="debug, info, warning (default), error")(fn)
    return broker_option(fn)


@cli.command()
@_worker_options
def worker(**flags: Any) -> None:
    """Run the pipeline's step processors (all, or only --steps) against --broker."""
    from streams.worker import run_worker

    try:
        run_worker(settings_from(**flags))
    except ConveyorError as exc:
        raise click.ClickException(str(exc)) from None


@cli.command()
@click.option("--port", type=int, default=9092, show_default=True, help="broker port")
@_worker_options
def up(port: int, **flags: Any) -> None:
    """Dev default: the embedded broker plus one worker (metrics on :9108)."""
    from streams.broker import EmbeddedBroker
    from streams.worker import run_worker

    flags["broker"] = f"127.0.0.1:{port}"
    settings = settings_from(**flags)
    b = EmbeddedBroker(port)
    try:
        b.start()
        click.echo(f"embedded broker on {b.bootstrap}; starting the worker", err=True)
        run_worker(settings)
    except ConveyorError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        b.stop()


@cli.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path), required=False)
@click.option("--index-dir", type=click.Path(path_type=Path), help="where indexes are cached")
def index(path: Path | None, index_dir: Path | None) -> None:
    """Build the retrieval index of a folder of Markdown/reST/HTML/text files (default: the Python docs)."""
    import time

    from steps.embedding import MiniLMEmbedder
    from steps.index import default_corpus, load_or_build

    settings = settings_from(index_dir=index_dir)
    started = time.time()
    if path is None:
        click.echo(f"corpus: {default_corpus()[0]}", err=True)
    idx = load_or_build(settings.index_dir, MiniLMEmbedder(), path)
    click.echo(f"{len(idx)} passages indexed from {idx.corpus} in {time.time() - started:.1f}s (cache: {settings.index_dir})")
    if path is not None:
        click.echo(f"serve it with: CONVEYOR_CORPUS={path.resolve()} conveyor worker")


@cli.command()
@click.argument("file", type=click.File("rb"), default="-")
@broker_option
def publish(file: Any, broker: str | None) -> None:
    """Publish JSON-lines requests from FILE (or stdin), with a progress bar."""
    from streams.client import Client

    lines = [line for line in file.read().splitlines() if line.strip()]
    try:
        requests = [orjson.loads(line) for line in lines]
    except orjson.JSONDecodeError as exc:
        raise click.UsageError(f"{file.name}: not JSON lines ({exc})") from None

    async def go() -> list[str]:
        async with Client(settings_from(broker=broker)) as client:
            with click.progressbar(length=len(requests), label="publishing", file=sys.stderr) as bar:
                done = [0]

                def tick(n: int) -> None:
                    bar.update(n - done[0])
                    done[0] = n

                return await client.publish(requests, on_sent=tick)

    for rid in run(go()):
        click.echo(rid)


def _pipeline_name(ref: str) -> str:
    """The pipeline name a ``--pipeline`` value stands for (a file is read for its ``name``)."""
    from streams.pipeline_file import load_pipeline

    if Path(ref).is_file():
        try:
            return load_pipeline(ref).name
        except ConveyorError as exc:
            raise click.ClickException(str(exc)) from None
    return ref


@cli.command()
@click.argument("path_or_name")
def check(path_or_name: str) -> None:
    """Validate a pipeline file (or a bundled pipeline): exit 1 with the first error, naming file, node and field."""
    from streams.budget import check_tiers
    from streams.pipeline_file import load_pipeline

    try:
        spec = load_pipeline(path_or_name)
        check_tiers(spec, settings_from().tiers, path_or_name)  # tier names against CONVEYOR_TIERS, when set
    except ConveyorError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{path_or_name}: pipeline {spec.name!r} is valid ({len(spec.nodes)} nodes, entry {spec.entry!r})")


@cli.command()
@click.argument("path_or_name")
@click.option("--format", "fmt", type=click.Choice(["text", "mermaid", "dot"]), default="text", show_default=True)
def graph(path_or_name: str, fmt: str) -> None:
    """Print a pipeline's graph as text, Mermaid or Graphviz DOT."""
    from streams.pipeline_file import load_pipeline
    from streams.render import render

    try:
        spec = load_pipeline(path_or_name)
    except ConveyorError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(render(spec, fmt))


@cli.command()
@click.argument("text", required=False, default="")
@click.option("--pipeline", default="support", show_default=True, help="pipeline name (or its file)")
@click.option("--session", help="session id: follow-ups in one session share history")
@click.option("--tenant", default="default", show_default=True)
@click.option("--metadata", help="JSON object passed to the steps as request metadata")
@click.option("--file", "file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="a document (e.g. an applicant's ID image) sent base64 as metadata.document_base64")
@click.option("--wait", is_flag=True, help="on pending_approval, keep waiting for the final result")
@click.option("--timeout", type=float, default=60.0, show_default=True)
@broker_option
def ask(text: str, pipeline: str, session: str | None, tenant: str, metadata: str | None, file: Path | None,
        wait: bool, timeout: float, broker: str | None) -> None:
    """Publish one request, wait for its result, print answer, citations and per-step figures."""
    import base64

    from streams.demo import ask_one
    from streams.report import print_result

    request: dict[str, Any] = {"text": text, "session": session, "tenant": tenant, "pipeline": _pipeline_name(pipeline)}
    if metadata:
        try:
            request["metadata"] = orjson.loads(metadata)
        except orjson.JSONDecodeError as exc:
            raise click.UsageError(f"--metadata must be a JSON object ({exc})") from None
        if not isinstance(request["metadata"], dict):
            raise click.UsageError("--metadata must be a JSON object, e.g. '{\"plan\": \"pro\"}'")
    if file is not None:
        meta = request.setdefault("metadata", {})
        meta["document_base64"] = base64.b64encode(file.read_bytes()).decode("ascii")
        meta["document_name"] = file.name
        request["text"] = text or f"document {file.name}"
    if not request["text"]:
        raise click.UsageError("give the request's TEXT (or --file)")
    result, spans = run(ask_one(settings_from(broker=broker), request, timeout, wait_approval=wait))
    print_result(result, spans)
    if result.status == "pending_approval":
        approval = result.output.get("approval", {})
        click.echo(f"\nwaiting for approval at {approval.get('node')}: {approval.get('summary')}\n"
                   f"answer with `conveyor approve {result.id} --yes` (or --no); "
                   "`conveyor results --follow` shows the final result")
        return
    if result.status not in ("ok",):
        sys.exit(1)


@cli.command()
@click.argument("request_id")
@click.option("--yes/--no", "approve", default=None, help="approve (--yes) or reject (--no)")
@click.option("--comment", default="", help="why: kept with the decision in the result")
@click.option("--by", default=None, help="who decides (default: $USER)")
@click.option("--tenant", help="the request's tenant, when several tenants used the same id")
@broker_option
def approve(request_id: str, approve: bool | None, comment: str, by: str | None, tenant: str | None,
            broker: str | None) -> None:
    """Answer a pending human approval (DESIGN.md §6)."""
    import getpass

    from streams.approval_desk import decide
    from streams.client import Client

    if approve is None:
        raise click.UsageError("say --yes to approve or --no to reject")
    try:
        who = by or getpass.getuser()
    except (KeyError, OSError):  # no login name in this environment (a container, an unknown uid)
        raise click.UsageError("cannot tell who you are: pass --by NAME") from None

    async def go() -> Any:
        async with Client(settings_from(broker=broker)) as client:
            return await decide(client, request_id, approve, comment, who, tenant)

    asked = run(go())
    verb = "approved" if approve else "rejected"
    click.echo(f"{verb} {request_id} (tenant {asked.tenant}, {asked.pipeline}.{asked.node}) by {who}: {asked.summary}")


@cli.command()
@click.option("--all", "show_all", is_flag=True, help="also those decided or expired")
@broker_option
def approvals(show_all: bool, broker: str | None) -> None:
    """List the requests waiting for a person's approval."""
    import time

    from streams.approval_desk import waiting_approvals
    from streams.client import Client

    async def go() -> Any:
        async with Client(settings_from(broker=broker)) as client:
            return await waiting_approvals(client)

    rows = [w for w in run(go()) if show_all or w.open]
    if not rows:
        click.echo("no approvals waiting" + ("" if show_all else " (--all shows decided and expired ones)"))
        return
    for w in rows:
        r = w.request
        if w.decided is not None:
            state = f"{w.decided.get('decision')} by {w.decided.get('by')}"
        elif w.expired:
            state = "expired"
        else:
            state = f"waits, expires in {max(0, r.expires_at - time.time()):.0f}s"
        click.echo(f"{r.id}  {r.tenant}  {r.pipeline}.{r.node}  {state}  {r.summary}")


@cli.command()
@click.option("--follow", is_flag=True, help="keep printing results as they arrive")
@broker_option
def results(follow: bool, broker: str | None) -> None:
    """Print results (JSON lines) from the beginning of conveyor.results."""
    from streams.client import Client
    from streams.topics import RESULTS

    async def go() -> None:
        async with Client(settings_from(broker=broker)) as client:
            async for _, value in client.read(RESULTS, None, None if follow else 3.0):
                click.echo(value.decode("utf-8", "replace"))

    try:
        run(go())
    except KeyboardInterrupt:
        pass


@cli.command()
@click.argument("request_id")
@click.option("--timeout", type=float, default=5.0, show_default=True, help="seconds to read conveyor.traces")
@broker_option
def trace(request_id: str, timeout: float, broker: str | None) -> None:
    """Print a request's execution trace as a waterfall with latency, tokens and cost per step."""
    from streams.client import Client
    from streams.report import print_waterfall
    from streams.topics import TRACES

    async def go() -> list[dict[str, Any]]:
        spans = []
        async with Client(settings_from(broker=broker)) as client:
            async for _, value in client.read(TRACES, None, timeout):
                span = orjson.loads(value)
                if request_id in (span.get("request_id"), span.get("trace_id")):
                    spans.append(span)
        return spans

    spans = run(go())
    if not spans:
        raise click.ClickException(f"no spans for {request_id!r} on conveyor.traces (is it a request id or trace id?)")
    tokens = sum(s["gen_ai.usage.input_tokens"] + s["gen_ai.usage.output_tokens"] for s in spans)
    click.echo(f"request {spans[0]['request_id']}  trace {spans[0]['trace_id']}  {len(spans)} spans, "
               f"{tokens} tokens, ${sum(s['cost_usd'] for s in spans):.6f}")
    print_waterfall(spans)


@cli.group()
def dlq() -> None:
    """Dead letters: look at them, replay them."""


@dlq.command("replay")
@click.option("--step", help="only dead letters of this step (e.g. generation, ingress)")
@click.option("--since", help="only dead letters written at or after this time (ISO 8601, e.g. 2026-11-25T10:00:00)")
@click.option("--dry-run", is_flag=True, help="list what would be replayed, send nothing")
@broker_option
def dlq_replay(step: str | None, since: str | None, dry_run: bool, broker: str | None) -> None:
    """Republish dead letters to the topic they came from, once each."""
    from datetime import datetime, timezone

    from streams.replay import describe, replay

    when = None
    if since:
        try:
            when = datetime.fromisoformat(since)
        except ValueError:
            raise click.UsageError(f"--since {since!r} is not ISO 8601; write e.g. 2026-11-25T10:00:00") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
    report = run(replay(settings_from(broker=broker), step, when, dry_run))
    for line in describe(report, dry_run):
        click.echo(line)


@cli.command()
@click.option("--workers", type=int, default=1, show_default=True, help="worker processes to start")
@click.option("--timeout", type=float, default=240.0, show_default=True, help="seconds to wait for the results")
@click.option("--pipeline", multiple=True, help="also serve this pipeline (a file or bundled name) and send it a sample; repeatable")
@click.option("--no-workflows", is_flag=True, help="only the support samples (skip research, assistant, onboarding, devteam)")
def demo(workers: int, timeout: float, pipeline: tuple[str, ...], no_workflows: bool) -> None:
    """The whole thing on the embedded broker: sample requests end to end, with a summary table."""
    from streams.demo import SAMPLES, run_demo

    extra = [ref for ref in pipeline if ref != "support"]
    samples = SAMPLES + [{"text": "hello big world", "tenant": "demo", "pipeline": _pipeline_name(ref)} for ref in extra]
    try:
        sys.exit(run_demo(workers=workers, timeout_s=timeout, samples=samples, pipelines=("support", *extra),
                          workflows=not no_workflows))
    except ConveyorError as exc:
        raise click.ClickException(str(exc)) from None


@cli.command("eval")
@click.argument("areas", nargs=-1)
@click.option("--failures", is_flag=True, help="also print examples that still fail")
def eval_(areas: tuple[str, ...], failures: bool) -> None:
    """Measure answer, retrieval, safety, PII and intent quality on the labelled sets of tests/data/eval."""
    root = Path(__file__).resolve().parents[1]
    if not (root / "tests" / "evals" / "__init__.py").is_file():
        raise click.ClickException(f"{root / 'tests' / 'evals'} not found: evaluations run from a source checkout")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from tests.evals import areas as known, measure_all

    unknown = sorted(set(areas) - set(known()))
    if unknown:
        raise click.UsageError(f"no evaluation {unknown[0]!r}; choose from {', '.join(known())}")
    rows = measure_all(list(areas) or None)
    click.echo(f"{'area':<12}{'metric':<40}{'split':<8}{'n':>6}{'value':>9}{'floor':>9}  ok")
    for r in rows:
        floor = "" if r.floor is None else (f"{'≥' if r.higher_is_better else '≤'}{r.floor:.2f}")
        click.echo(f"{r.area:<12}{r.metric:<40}{r.split:<8}{r.n:>6}{r.value:>9.3f}{floor:>9}  {'yes' if r.passes else 'NO'}")
    if failures:
        for r in rows:
            for example in r.failures[:10]:
                click.echo(f"  {r.area}/{r.metric}: {example}")
    if not all(r.passes for r in rows):
        sys.exit(1)


BENCHMARKS = {"overhead": "overhead.py", "chaos": "chaos.py", "soak": "soak.py"}


@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True}, add_help_option=False)
@click.pass_context
def bench(ctx: click.Context) -> None:
    """Run a benchmark of BENCHMARKS.md: [overhead] (default) or chaos, with its flags (--help for them).

    overhead: bench/overhead.py (--n, --paced, --rate, --reps); chaos: bench/chaos.py, a SIGKILL
    campaign counting lost requests (--requests, --sessions, --rate, --workers, --kills, --pipeline, --seed).
    """
    import runpy

    args = list(ctx.args)
    name = args.pop(0) if args and args[0] in BENCHMARKS else "overhead"
    script = Path(__file__).resolve().parents[1] / "bench" / BENCHMARKS[name]
    if not script.is_file():
        raise click.ClickException(f"{script} not found: benchmarks run from a source checkout (`pip install -e .`)")
    sys.argv = [str(script), *args]
    runpy.run_path(str(script), run_name="__main__")


def main() -> None:
    cli(prog_name="conveyor")


if __name__ == "__main__":
    main()
