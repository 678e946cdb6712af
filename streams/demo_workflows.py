"""The demo's second half: one request of each workflow of the product brief, end to end on the broker.

- ``research``: a question answered from the Python docs and WordNet, with a fact-check verdict per cited sentence;
- ``assistant``: the planner chooses and calls tools (offline: by matching the request against their descriptions);
- ``onboarding``: two rendered ID documents; the clean applicant passes, the risky one waits for a person, and
  the demo itself answers with ``conveyor approve`` (a subprocess, as a person at a terminal would);
- ``devteam``: with an LLM configured (``CONVEYOR_LLM_PROVIDER=openai``) a feature request; offline it shows the
  ``rejected`` result that names the setting.
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

from streams.app import Settings
from streams.client import Client
from streams.envelope import Result
from streams.report import print_body
from streams.topics import RESULTS

__all__ = ["WORKFLOWS", "run_workflows"]

WORKFLOWS = ("research", "assistant", "onboarding", "devteam")
RESEARCH_QUESTION = "What does idempotent mean, and how do I make a Python function idempotent?"
TOOLS_QUESTION = "What is 17 * 23, and how many days are there between 2026-01-01 and 2026-03-01?"
FEATURE = "Add a slugify(text) function that lowercases, strips accents and joins words with hyphens, with tests."


def _header(title: str) -> None:
    click.echo(f"\n── {title} " + "─" * max(0, 70 - len(title)))


def _show(result: Result, seconds: float) -> None:
    click.echo(f"status: {result.status}   {seconds * 1000:.0f} ms end to end   route: {' → '.join(result.route)}")
    print_body(result)


async def _ask(settings: Settings, request: dict[str, Any], timeout_s: float, pending: bool = False) -> Result:
    async with Client(settings) as client:
        start = await client.positions(RESULTS)
        (rid,) = await client.publish([request])
        found = await client.results([rid], start, timeout_s, tenants={rid: request.get("tenant", "default")},
                                     pending=pending)
        return found[rid]


async def _final(settings: Settings, rid: str, tenant: str, timeout_s: float) -> Result:
    async with Client(settings) as client:
        return (await client.results([rid], None, timeout_s, tenants={rid: tenant}))[rid]


def _approve(bootstrap: str, rid: str) -> str:
    env = {**os.environ, "CONVEYOR_BROKER": bootstrap}
    cmd = [sys.executable, "-m", "streams.cli", "approve", rid, "--yes", "--by", "demo",
           "--comment", "documents checked by hand"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    if done.returncode != 0:
        raise click.ClickException(f"conveyor approve failed: {done.stderr.strip()}")
    return done.stdout.strip()


def _ask_and_show(settings: Settings, run_id: str, pipeline: str, text: str, timeout_s: float) -> None:
    """One request of ``pipeline``, shown as ``conveyor ask`` would be typed, with its result."""
    click.echo(f"$ conveyor ask --pipeline {pipeline} {text!r}")
    t = time.time()
    request = {"id": f"demo-{run_id}-{pipeline}", "text": text, "pipeline": pipeline, "tenant": "acme"}
    result = asyncio.run(_ask(settings, request, timeout_s))
    _show(result, time.time() - t)


def _research(settings: Settings, run_id: str, timeout_s: float) -> None:
    _header("research: Python docs + WordNet in parallel, findings map, cited synthesis, fact-check")
    _ask_and_show(settings, run_id, "research", RESEARCH_QUESTION, timeout_s)


def _assistant(settings: Settings, run_id: str, timeout_s: float) -> None:
    _header("assistant: the planner picks tools (calculator, dates, docs search...), each call a span")
    _ask_and_show(settings, run_id, "assistant", TOOLS_QUESTION, timeout_s)


def _onboarding(settings: Settings, run_id: str, run_dir: Path, timeout_s: float) -> None:
    from steps.onboarding.samples import demo_applicants

    _header("onboarding: OCR → fields → fraud model → rules → approval when risky → welcome")
    for label, applicant_png in demo_applicants(run_dir):
        rid = f"demo-{run_id}-onboard-{label}"
        click.echo(f"\n$ conveyor ask --pipeline onboarding --file {applicant_png}")
        data = base64.b64encode(applicant_png.read_bytes()).decode("ascii")
        request = {"id": rid, "text": f"onboard {label} applicant", "pipeline": "onboarding", "tenant": "fintech",
                   "metadata": {"document_base64": data, "document_name": applicant_png.name}}
        t = time.time()
        result = asyncio.run(_ask(settings, request, timeout_s, pending=True))
        if result.status == "pending_approval":
            approval = result.output.get("approval", {})
            click.echo(f"status: pending_approval after {(time.time() - t) * 1000:.0f} ms: {approval.get('summary')}")
            click.echo(f"$ conveyor approve {rid} --yes --comment 'documents checked by hand'")
            click.echo(_approve(settings.broker, rid))
            result = asyncio.run(_final(settings, rid, "fintech", timeout_s))
        _show(result, time.time() - t)


def _devteam(settings: Settings, run_id: str, timeout_s: float) -> None:
    _header("devteam: planner → coder ⇄ reviewer → sandboxed tester (a loop per task)")
    configured = os.environ.get("CONVEYOR_LLM_PROVIDER", "extractive") == "openai"
    if not configured:
        click.echo("no LLM configured: the pipeline refuses rather than fake its agents (it would run with "
                   "CONVEYOR_LLM_PROVIDER=openai CONVEYOR_LLM_BASE_URL=...)")
    # the pipeline file gives its requests a 15-minute deadline; a real model's answer is waited for as long
    _ask_and_show(settings, run_id, "devteam", FEATURE, timeout_s if not configured else max(timeout_s, 900))


def run_workflows(settings: Settings, run_id: str, run_dir: Path, timeout_s: float) -> None:
    """One request of each workflow against the running broker and workers (they serve ``WORKFLOWS``)."""
    _research(settings, run_id, timeout_s)
    _assistant(settings, run_id, timeout_s)
    _onboarding(settings, run_id, run_dir, timeout_s)
    _devteam(settings, run_id, timeout_s)
