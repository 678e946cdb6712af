"""What the planner, coder and reviewer are told: system prompts and the messages built from the branch's state.

Each system prompt opens with ``devteam role: <name>`` so logs, and a scripted test server, can tell
the agents apart by what a request says rather than by the order of the calls. The coder's message
carries the feedback on its previous version: the reviewer's comments, or the failing test output.
"""

from __future__ import annotations

from steps.devteam.models import ReviewRecord, Task, TestRecord

__all__ = ["OFFLINE", "coder_messages", "feedback", "planner_messages", "reviewer_messages", "render_files"]

OFFLINE = (
    "the devteam pipeline runs agents on an OpenAI-compatible chat model, and only the offline generator is "
    "configured: set CONVEYOR_LLM_PROVIDER=openai and CONVEYOR_LLM_BASE_URL (e.g. http://localhost:8000/v1), "
    "plus CONVEYOR_LLM_MODEL and CONVEYOR_LLM_API_KEY if your server needs them"
)

PLANNER = """devteam role: planner
You plan the work of a small software team. Split the user's feature request into at most {max_tasks} \
independent tasks. Each task is one Python module (standard library only) that a developer can write and \
test with pytest on its own, without the other tasks' code.
Answer with JSON only:
{{"tasks": [{{"title": "short title", "description": "what the module must do, with its function \
signatures and edge cases", "module": "snake_case_module_name"}}]}}"""

CODER = """devteam role: coder
You write one Python module (standard library only) and its pytest tests for the task you are given. \
The tests import the module by name, run in a fresh directory holding only your files, and must pass.
Answer with JSON only:
{"files": {"<module>.py": "<source>", "test_<module>.py": "<pytest tests>"}, "notes": "what you changed"}
When you get review comments or failing test output, fix the code (or a wrong test) and answer with the \
complete files again."""

REVIEWER = """devteam role: reviewer
You review one Python module and its pytest tests against the task. Approve only if the code does what \
the task asks, handles its edge cases, and the tests check that behaviour. Do not ask for style changes.
Answer with JSON only:
{"verdict": "approved" or "changes", "comments": ["one concrete change per item"]}"""


def render_files(files: dict[str, str]) -> str:
    """The files as fenced blocks named above their fence."""
    return "\n\n".join(f"{name}:\n```python\n{content.rstrip()}\n```" for name, content in sorted(files.items()))


def _task(task: Task, index: int | None = None) -> str:
    head = f"Task {index + 1}: " if index is not None else "Task: "
    return (f"{head}{task.title}\n{task.description}\n"
            f"Module: {task.source_file}\nTests: {task.test_file}")


def planner_messages(request: str, max_tasks: int) -> list[dict[str, str]]:
    return [{"role": "system", "content": PLANNER.format(max_tasks=max_tasks)},
            {"role": "user", "content": f"Feature request:\n{request}"}]


def feedback(version: int, reviews: list[ReviewRecord], test_runs: list[TestRecord]) -> str:
    """What was said about ``version``: its failing test run if it got that far, else the review's comments."""
    run = next((t for t in reversed(test_runs) if t.version == version), None)
    if run is not None and not run.passed:
        if not run.ran:
            return f"Version {version} could not be tested: {run.outcome}"
        return (f"The tests of version {version} failed ({run.outcome}; {run.summary or 'no summary'}). "
                f"pytest output:\n```\n{run.output.strip()}\n```")
    review = next((r for r in reversed(reviews) if r.version == version), None)
    if review is not None and review.verdict == "changes":
        comments = "\n".join(f"- {c}" for c in review.comments) or "- (no comments given)"
        return f"The reviewer asked for changes to version {version}:\n{comments}"
    return ""


def coder_messages(task: Task, index: int, version: int, files: dict[str, str], said: str) -> list[dict[str, str]]:
    """The coder's messages for writing ``version`` (1 = first) of ``task``."""
    parts = [_task(task, index), f"Version: {version}"]
    if files:
        parts.append(f"Your previous version ({version - 1}):\n{render_files(files)}")
    if said:
        parts.append(said)
    return [{"role": "system", "content": CODER}, {"role": "user", "content": "\n\n".join(parts)}]


def reviewer_messages(task: Task, version: int, files: dict[str, str], reviews: list[ReviewRecord],
                      problems: list[str] | None = None) -> list[dict[str, str]]:
    """The reviewer's messages for ``version``; earlier comments are shown so it can check they were addressed."""
    parts = [_task(task), f"Version: {version}", render_files(files)]
    if problems:
        parts.append("Parts of the coder's reply could not be used:\n" + "\n".join(f"- {p}" for p in problems))
    earlier = [r for r in reviews if r.verdict == "changes" and r.comments]
    if earlier:
        asked = "\n".join(f"- (version {r.version}) {c}" for r in earlier for c in r.comments)
        parts.append(f"You asked earlier for:\n{asked}")
    return [{"role": "system", "content": REVIEWER}, {"role": "user", "content": "\n\n".join(parts)}]
