"""Printing results, traces and per-step figures for people (``ask``, ``trace``, ``demo``)."""

from __future__ import annotations

import statistics
import time
from typing import Any

import click

from streams.envelope import Result

__all__ = ["STEP_ORDER", "histogram_p50", "print_body", "print_output", "print_result", "print_steps", "print_table", "print_waterfall"]

STEP_ORDER = ("ingress", "classification", "retrieval", "generation", "safety")


def _short(text: str | None, width: int) -> str:
    text = (text or "").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def print_result(result: Result, spans: list[dict[str, Any]]) -> None:
    click.echo(f"status: {result.status}   intent: {result.intent}   route: {' → '.join(result.route)}")
    print_body(result)
    click.echo(f"\nlatency {result.latency_ms:.0f} ms, tokens {result.usage.input_tokens}+{result.usage.output_tokens}, "
               f"cost ${result.usage.cost_usd:.6f}, trace {result.trace_id}")
    print_waterfall(spans)


def print_body(result: Result) -> None:
    """Answer, error, citations, safety verdict and ``output`` of a result, for people."""
    if result.answer:
        click.echo(f"\n{result.answer}\n")
    if result.error:
        click.echo(f"error: {result.error}")
    for i, c in enumerate(result.citations, 1):
        click.echo(f"[{i}] {c.source} — {c.title} (score {c.score:.2f})")
    if result.safety:
        click.echo(f"safety: {result.safety.verdict} {result.safety.flags}")
    if result.output:
        click.echo("output:")
        print_output(result.output)


def _compact(value: Any, width: int) -> str:
    if isinstance(value, dict):
        text = ", ".join(f"{k}={_compact(v, 60)}" for k, v in value.items() if v is not None)
    elif isinstance(value, list) and not any(isinstance(v, (dict, list)) for v in value):
        text = ", ".join(str(v) for v in value)
    elif isinstance(value, float) and 1e9 < value < 1e10:  # a time.time() value: say when
        text = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value))
    elif isinstance(value, float):
        text = f"{value:.3g}"
    else:
        text = str(value)
    return _short(text, width)


def print_output(output: dict[str, Any], indent: str = "  ", width: int = 150) -> None:
    """``Result.output`` for people: one line per field; a list of records or a nested record, one line per item."""
    for key, value in output.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            click.echo(f"{indent}{key}:")
            for item in value[:20]:
                click.echo(f"{indent}  - {_compact(item, width)}")
            if len(value) > 20:
                click.echo(f"{indent}  … {len(value) - 20} more")
        elif isinstance(value, dict) and any(isinstance(v, (dict, list)) for v in value.values()) and indent == "  ":
            click.echo(f"{indent}{key}:")
            print_output(value, indent + "  ", width)
        else:
            click.echo(f"{indent}{key}: {_compact(value, width)}")


def print_waterfall(spans: list[dict[str, Any]], width: int = 30) -> None:
    """One line per step: when it started after publish, queue and work time, tokens, cost, route."""
    if not spans:
        click.echo("no spans (yet) for this request")
        return
    spans = sorted(spans, key=lambda s: s["started_at"])
    t0 = min(s["started_at"] - s["queue_s"] for s in spans)
    total = max(max(s["ended_at"] for s in spans) - t0, 1e-6)
    click.echo(f"  {'step':<15} {'start':>8} {'queue':>9} {'work':>9} {'tokens':>10} {'cost $':>10} {'status':<8} {'next':<11}")
    for s in spans:
        begin = int((s["started_at"] - t0) / total * width)
        length = max(1, int(s["processing_s"] / total * width))
        bar = " " * begin + "█" * min(length, width - begin)
        tokens = f"{s['gen_ai.usage.input_tokens']}+{s['gen_ai.usage.output_tokens']}"
        click.echo(f"  {s['step']:<15} {(s['started_at'] - t0) * 1000:>6.0f}ms {s['queue_s'] * 1000:>7.1f}ms "
                   f"{s['processing_s'] * 1000:>7.1f}ms {tokens:>10} {s['cost_usd']:>10.6f} {s['status']:<8} "
                   f"{(s['route'] or '-'):<11} |{bar:<{width}}|")


def print_table(results: list[Result], samples: list[dict[str, Any]]) -> None:
    header = (f"{'id':<8} {'intent':<10} {'route':<24} {'status':<9} {'safety':<7} {'latency':>8} {'tokens':>9} "
              f"{'cost $':>9}  first citation")
    click.echo(header)
    click.echo("-" * len(header))
    for r in results:
        route = ">".join(step[:4] for step in r.route)
        tokens = f"{r.usage.input_tokens}+{r.usage.output_tokens}"
        cite = r.citations[0].source if r.citations else ""
        verdict = r.safety.verdict if r.safety else "-"
        click.echo(f"{r.id[-7:]:<8} {r.intent or '-':<10} {route:<24} {r.status:<9} {verdict:<7} {r.latency_ms:>6.0f}ms {tokens:>9} "
                   f"{r.usage.cost_usd:>9.6f}  {cite}")
    click.echo("")
    for r, sample in zip(results, samples, strict=True):
        text = r.answer or r.error or ""
        click.echo(f"{r.id[-7:]}  Q: {_short(sample['text'], 70)}\n         A: {_short(text, 150)}")


def print_steps(spans: list[dict[str, Any]]) -> None:
    by_step: dict[str, list[dict[str, Any]]] = {}
    for s in spans:
        by_step.setdefault(s["step"], []).append(s)
    click.echo(f"\n{'step':<15} {'runs':>5} {'work p50':>10} {'work max':>10} {'queue p50':>10} {'tokens in+out':>14}")
    for step in [s for s in STEP_ORDER if s in by_step] + sorted(set(by_step) - set(STEP_ORDER)):
        rows = by_step[step]
        work = [r["processing_s"] * 1000 for r in rows]
        queue = [r["queue_s"] * 1000 for r in rows]
        tin = sum(r["gen_ai.usage.input_tokens"] for r in rows)
        tout = sum(r["gen_ai.usage.output_tokens"] for r in rows)
        click.echo(f"{step:<15} {len(rows):>5} {statistics.median(work):>8.1f}ms {max(work):>8.1f}ms "
                   f"{statistics.median(queue):>8.1f}ms {tin:>8}+{tout}")


def histogram_p50(expositions: list[str], metric: str) -> dict[str, float]:
    """Median per step of a histogram summed over workers, interpolated within buckets like histogram_quantile."""
    from prometheus_client.parser import text_string_to_metric_families

    counts: dict[str, dict[float, float]] = {}
    for exposition in expositions:
        for family in text_string_to_metric_families(exposition):
            if family.name != metric:
                continue
            for sample in family.samples:
                if sample.name.endswith("_bucket"):
                    per_le = counts.setdefault(sample.labels["step"], {})
                    le = float(sample.labels["le"])
                    per_le[le] = per_le.get(le, 0.0) + sample.value
    out: dict[str, float] = {}
    for step, per_le in counts.items():
        rows = sorted(per_le.items())
        total = rows[-1][1]
        if not total:
            continue
        rank, lower, below = total / 2, 0.0, 0.0
        for le, count in rows:
            if count >= rank:
                upper = le if le != float("inf") else lower
                out[step] = lower + (upper - lower) * ((rank - below) / max(count - below, 1e-9))
                break
            lower, below = le, count
    return out
