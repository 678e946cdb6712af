"""How the devteam ends: a task that ran out of rounds, and the join that gathers every task's report.

``code`` has ``max_visits``: the visit after the last allowed version goes to ``on_limit``, the
``devteam-unfinished`` step, which reports the task as unfinished with its last code and the
feedback it did not get past, and joins the other tasks. A request therefore ends ``ok`` with
``all_passed`` false rather than ``failed``: the code that was written is still returned.
"""

from __future__ import annotations

from pydantic import ValidationError

from steps.base import StepContext
from steps.devteam.models import CollectInput, CollectOutput, TaskReport, TestInput, UnfinishedOutput
from steps.devteam.prompts import feedback
from steps.registry import step

__all__ = ["collect", "unfinished"]


@step("devteam-unfinished")
async def unfinished(input: TestInput, ctx: StepContext) -> UnfinishedOutput:
    """The task's report when the coder ran out of rounds: its last version and what was said about it."""
    said = feedback(input.version, input.reviews, input.test_runs).split("\n", 1)[0]
    return UnfinishedOutput(report=TaskReport(
        index=input.index, title=input.item.title, module=input.item.module, status="unfinished",
        rounds=input.version, review_rounds=len(input.reviews), test_runs=len(input.test_runs), files=input.files,
        reviews=input.reviews, tests=input.test_runs,
        reason=f"no approved, passing version after {input.version} rounds" + (f"; last: {said}" if said else ""),
    ))


def _line(report: TaskReport) -> str:
    counts = f"{report.rounds} round(s), {report.review_rounds} review(s), {report.test_runs} test run(s)"
    if report.status == "passed":
        return f"- {report.title} ({report.module}.py): passed after {counts}"
    return f"- {report.title} ({report.module}.py): {report.status} after {counts}: {report.reason}"


@step("devteam-collect")
async def collect(input: CollectInput, ctx: StepContext) -> CollectOutput:
    """Every task's report in plan order (a task the join went without is ``missing``), rounds and a summary."""
    reports: dict[int, TaskReport] = {}
    for item in input.items:
        try:
            report = TaskReport.model_validate(item.get("report"))
        except ValidationError:
            continue
        reports[report.index] = report
    for index in input.missing:
        if index not in reports and 0 <= index < len(input.tasks):
            task = input.tasks[index]
            reports[index] = TaskReport(index=index, title=task.title, module=task.module, status="missing",
                                        rounds=0, review_rounds=0, test_runs=0,
                                        reason="its branch did not reach the join (failed or timed out)")
    ordered = [reports[i] for i in sorted(reports)]
    passed = sum(r.status == "passed" for r in ordered)
    all_passed = bool(ordered) and passed == len(ordered) and not input.missing
    answer = "\n".join([f"{passed} of {len(ordered)} task(s) passed their tests.", *map(_line, ordered)])
    return CollectOutput(reports=ordered, rounds={r.module: r.rounds for r in ordered}, all_passed=all_passed,
                         answer=answer)
