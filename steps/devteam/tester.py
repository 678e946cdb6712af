"""The devteam's tester: runs a task's generated pytest tests in the sandbox and routes on the outcome.

No model here: the verdict is pytest's exit code, and a failure's output goes back to the coder
(the loop ``test --failed--> code``). The run happens on a worker thread, never on the event loop.
"""

from __future__ import annotations

import re
import time
from typing import Any

from steps.base import FatalStepError, StepContext
from steps.devteam.models import TaskReport, TestInput, TestOutput, TestRecord
from steps.devteam.sandbox import Limits, SandboxRun, SandboxStartError, UnsafeFileError, pytest_files, run_pytest_async
from steps.registry import step

__all__ = ["Tester", "pytest_summary"]

_SUMMARY = re.compile(r"\b\d+ (?:passed|failed|errors?|skipped|xfailed|xpassed|deselected)\b")
NO_TESTS_COLLECTED = 5  # pytest's exit code


def pytest_summary(output: str) -> str:
    """pytest's closing line ("1 failed, 2 passed in 0.03s"), or ""."""
    for line in reversed(output.strip().splitlines()):
        if _SUMMARY.search(line) or "no tests ran" in line:
            return line.strip("= ").strip()
    return ""


def _record(version: int, run: SandboxRun) -> TestRecord:
    outcome = run.describe()
    if run.exit_code == NO_TESTS_COLLECTED:
        outcome += ": pytest collected no tests (name them test_*)"
    return TestRecord(version=version, passed=run.passed, outcome=outcome, summary=pytest_summary(run.output),
                      output=run.output, duration_s=run.duration_s)


@step("devteam-test")
class Tester:
    """Runs ``python -m pytest -q`` on the task's test files under the sandbox's limits (node ``config``)."""

    def __init__(self, time_s: float = 20.0, cpu_s: int = 10, memory_mb: int = 512, file_mb: int = 8,
                 processes: int = 64, open_files: int = 256, output_chars: int = 4000) -> None:
        self.limits = Limits(time_s=time_s, cpu_s=cpu_s, memory_mb=memory_mb, file_mb=file_mb, processes=processes,
                             open_files=open_files, output_chars=output_chars)

    async def run(self, input: TestInput, ctx: StepContext) -> TestOutput:
        record = await self._test(input, ctx)
        runs = [*input.test_runs, record]
        report = TaskReport(
            index=input.index, title=input.item.title, module=input.item.module,
            status="passed" if record.passed else "unfinished", rounds=input.version,
            review_rounds=len(input.reviews), test_runs=len(runs), files=input.files, reviews=input.reviews,
            tests=runs, reason="" if record.passed else f"version {input.version}: {record.outcome}",
        )
        return TestOutput(route="passed" if record.passed else "failed", test_runs=runs, report=report)

    async def _test(self, input: TestInput, ctx: StepContext) -> TestRecord:
        task = input.item
        if not pytest_files(input.files):
            return TestRecord(version=input.version, passed=False, ran=False,
                              outcome=f"there is no test file: write pytest tests in {task.test_file}")
        started = time.time()
        try:
            run = await run_pytest_async(input.files, self.limits)
        except UnsafeFileError as exc:
            return TestRecord(version=input.version, passed=False, ran=False, outcome=str(exc))
        except SandboxStartError as exc:
            raise FatalStepError(f"the devteam tester could not run pytest: {exc}") from exc
        attributes: dict[str, Any] = {
            "devteam.task": task.module, "devteam.version": input.version, "sandbox.passed": run.passed,
            "sandbox.exit_code": run.exit_code, "sandbox.signal": run.signal,
            "sandbox.timed_out": run.timed_out, "sandbox.duration_s": run.duration_s}
        ctx.record_span("sandbox.pytest", started, time.time(), kind="tool", **attributes)
        return _record(input.version, run)
