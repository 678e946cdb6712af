"""The devteam's data: a task, a review, a test run, a task's report, and each step's input and output.

Inside the map, each task is a branch whose steps' outputs accumulate in the branch's own state
(DESIGN.md §5): the coder reads the reviewer's and tester's records from there when the loop brings
it back, and the join receives only the branch's *last* output, so the tester (and the unfinished
node) put everything the collector needs in one :class:`TaskReport`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from steps.base import StepModel

__all__ = [
    "CodeInput",
    "CodeOutput",
    "CollectInput",
    "CollectOutput",
    "PlanInput",
    "PlanOutput",
    "ReviewInput",
    "ReviewOutput",
    "ReviewRecord",
    "Task",
    "TaskReport",
    "TestInput",
    "TestOutput",
    "TestRecord",
    "UnfinishedOutput",
]


class Task(StepModel):
    """One unit of work the planner found: a module and its tests."""

    title: str
    description: str = ""
    module: str  # a Python module name: the coder writes <module>.py and test_<module>.py

    @property
    def source_file(self) -> str:
        return f"{self.module}.py"

    @property
    def test_file(self) -> str:
        return f"test_{self.module}.py"


class ReviewRecord(StepModel):
    """The reviewer's verdict on one version of a task's code."""

    version: int
    verdict: Literal["approved", "changes"]
    comments: list[str] = []
    by_model: bool = True  # False: the reviewer decided without asking the model (nothing to review)


class TestRecord(StepModel):
    """One sandboxed pytest run on one version of a task's code."""

    __test__ = False  # a model, not a pytest test class

    version: int
    passed: bool
    ran: bool = True  # False: there was nothing to run (no test file)
    outcome: str = ""  # "exit code 1", "killed after the 20.0s time limit", ...
    summary: str = ""  # pytest's last line, e.g. "1 failed, 2 passed in 0.03s"
    output: str = ""
    duration_s: float = 0.0


class TaskReport(StepModel):
    """Where one task ended: its final code and how many rounds of review and testing it took."""

    index: int
    title: str
    module: str
    status: Literal["passed", "unfinished", "missing"]
    rounds: int  # versions the coder wrote
    review_rounds: int
    test_runs: int
    files: dict[str, str] = {}
    reviews: list[ReviewRecord] = []
    tests: list[TestRecord] = []
    reason: str = ""


class PlanInput(StepModel):
    text: str


class PlanOutput(StepModel):
    tasks: list[Task]
    plan_notes: str = ""


class CodeInput(StepModel):
    item: Task
    index: int
    version: int = 0
    files: dict[str, str] = {}
    reviews: list[ReviewRecord] = []
    test_runs: list[TestRecord] = []


class CodeOutput(StepModel):
    version: int
    files: dict[str, str]
    notes: str = ""
    problems: list[str] = []  # what could not be read from the coder's reply (shown to the reviewer and the coder)


class ReviewInput(StepModel):
    item: Task
    version: int
    files: dict[str, str] = {}
    problems: list[str] = []
    reviews: list[ReviewRecord] = []
    test_runs: list[TestRecord] = []


class ReviewOutput(StepModel):
    route: Literal["approved", "changes"]
    reviews: list[ReviewRecord]


class TestInput(StepModel):
    __test__ = False

    item: Task
    index: int
    version: int
    files: dict[str, str] = {}
    reviews: list[ReviewRecord] = []
    test_runs: list[TestRecord] = []


class TestOutput(StepModel):
    __test__ = False

    route: Literal["passed", "failed"]
    test_runs: list[TestRecord]
    report: TaskReport


class UnfinishedOutput(StepModel):
    report: TaskReport


class CollectInput(StepModel):
    items: list[dict[str, object]] = []
    missing: list[int] = []
    tasks: list[Task] = []


class CollectOutput(StepModel):
    reports: list[TaskReport]
    rounds: dict[str, int] = Field(description="versions the coder wrote, by task module")
    all_passed: bool
    answer: str
