"""The onboarding workflow as a new user drives it: `conveyor ask --file`, `conveyor approve`, on the real broker."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from steps.onboarding.samples import demo_applicants

pytestmark = pytest.mark.integration


def conveyor(bootstrap: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONVEYOR_BROKER": bootstrap, "USER": "carol"}
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], capture_output=True, text=True, env=env,
                          timeout=180, cwd=cwd)


def test_clean_passes_risky_waits_for_a_person_and_expires_when_nobody_answers(
    own_broker: Any, start_worker: Any, tmp_path: Path
) -> None:
    # the bundled pipeline, with a 3 s approval timeout so that the expiry is seen in this test
    from importlib import resources

    text = resources.files("streams").joinpath("pipelines/onboarding.yaml").read_text()
    flow = yaml.safe_load(text)
    for node in flow["nodes"]:
        if node["step"] == "approval":
            node["config"]["timeout_s"] = 3
    quick = tmp_path / "onboarding-quick.yaml"
    quick.write_text(yaml.safe_dump({**flow, "name": "onboardingquick"}))
    start_worker(own_broker, "--pipeline", "onboarding", "--pipeline", str(quick)).wait_ready()
    (_, clean), (_, risky) = demo_applicants(tmp_path / "docs")

    passed = conveyor(own_broker.bootstrap, "ask", "--pipeline", "onboarding", "--file", str(clean), "--timeout", "120")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "status: ok" in passed.stdout and "approval" not in passed.stdout.split("output:")[-1]
    assert "Your Conveyor Bank account is open" in passed.stdout

    waiting = conveyor(own_broker.bootstrap, "ask", "--pipeline", "onboarding", "--file", str(risky), "--timeout", "120")
    assert waiting.returncode == 0 and "status: pending_approval" in waiting.stdout, waiting.stdout + waiting.stderr
    rid = re.search(r"conveyor approve (\S+) --yes", waiting.stdout).group(1)  # type: ignore[union-attr]
    listed = conveyor(own_broker.bootstrap, "approvals")
    assert rid in listed.stdout and "onboarding.review" in listed.stdout
    approved = conveyor(own_broker.bootstrap, "approve", rid, "--yes", "--comment", "passport checked")
    assert approved.returncode == 0 and f"approved {rid}" in approved.stdout, approved.stderr

    # the final result of that request: ask --wait would have waited for it; read it with the client
    import asyncio

    from streams.app import Settings
    from streams.client import Client

    async def final(request_id: str) -> Any:
        async with Client(Settings(broker=own_broker.bootstrap)) as client:
            return (await client.results([request_id], None, 120))[request_id]

    done = asyncio.run(final(rid))
    assert done.status == "ok" and done.output["approval"]["by"] == "carol", done
    assert done.route[-2:] == ["review (approved by carol)", "welcome"] and "reviewed your application" in done.answer

    expired = conveyor(own_broker.bootstrap, "ask", "--pipeline", "onboardingquick", "--file", str(risky), "--wait",
                       "--timeout", "120")
    assert expired.returncode == 1, expired.stdout + expired.stderr  # not ok: the declared default is $reject
    assert "status: rejected" in expired.stdout and "review (expired by timeout)" in expired.stdout
