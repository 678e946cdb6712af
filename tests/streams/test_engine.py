"""The engine in-process (``streams.testing``): fan-out and joins, maps, bounded loops, fallbacks, terminals.

The pipeline is DESIGN.md §5's example; its steps are declared here. Everything runs through the
same processors as a worker, without a broker.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar, Literal

import pytest
from pydantic import BaseModel

from steps.base import FatalStepError, RetryableStepError, StepContext
from streams.errors import GraphError
from streams.graph import GraphSpec
from streams.pipeline_file import parse_pipeline
from streams.testing import run, run_pipeline


class Text(BaseModel):
    text: str


class Words(BaseModel):
    words: list[str]


class Loud(BaseModel):
    shout: str


class Count(BaseModel):
    count: int


class Gathered(BaseModel):
    branches: dict[str, Any]
    missing: list[Any] = []
    words: list[str] = []


class Summary(BaseModel):
    summary: str


class Plan(BaseModel):
    tasks: list[str]


class Item(BaseModel):
    item: str
    index: int


class Done(BaseModel):
    done: str


class Items(BaseModel):
    items: list[dict[str, Any]]
    missing: list[Any] = []


class Merged(BaseModel):
    merged: list[str]


class Verdict(BaseModel):
    route: Literal["again", "done"]


def make(name: str, inp: type[BaseModel], out: type[BaseModel], fn: Any) -> type:
    class _Step:
        Input: ClassVar[type[BaseModel]] = inp
        Output: ClassVar[type[BaseModel]] = out
        calls: ClassVar[list[Any]] = []

        def __init__(self, **config: Any) -> None:
            self.config = config

        async def warm_up(self, deps: Any) -> None:
            return None

        async def run(self, input: Any, ctx: StepContext) -> Any:
            type(self).calls.append(input)
            return await fn(input, ctx, self.config)

    _Step.__name__ = name
    return _Step


async def _split(i: Text, ctx: StepContext, cfg: dict[str, Any]) -> Words:
    return Words(words=i.text.split())


async def _shout(i: Text, ctx: StepContext, cfg: dict[str, Any]) -> Loud:
    if cfg.get("broken"):
        raise RetryableStepError("the shouting service is down")
    return Loud(shout=i.text.upper())


async def _plain(i: Text, ctx: StepContext, cfg: dict[str, Any]) -> Loud:
    return Loud(shout=i.text + "!")


async def _count(i: Words, ctx: StepContext, cfg: dict[str, Any]) -> Count:
    return Count(count=len(i.words))


async def _combine(i: Gathered, ctx: StepContext, cfg: dict[str, Any]) -> Summary:
    parts = [f"{k}={v}" for k, v in sorted(i.branches.items())]
    return Summary(summary="; ".join(parts) + (f" missing={i.missing}" if i.missing else ""))


async def _plan(i: Words, ctx: StepContext, cfg: dict[str, Any]) -> Plan:
    return Plan(tasks=list(i.words))


async def _work(i: Item, ctx: StepContext, cfg: dict[str, Any]) -> Done:
    if i.item == cfg.get("fail_on"):
        raise FatalStepError(f"cannot work on {i.item}")
    return Done(done=f"{i.index}:{i.item.upper()}")


async def _merge(i: Items, ctx: StepContext, cfg: dict[str, Any]) -> Merged:
    return Merged(merged=[x["done"] for x in i.items])


async def _judge(i: Merged, ctx: StepContext, cfg: dict[str, Any]) -> Verdict:
    return Verdict(route=cfg.get("always", "again"))


STEPS: dict[str, type] = {
    "split": make("Split", Text, Words, _split),
    "shout": make("Shout", Text, Loud, _shout),
    "plain": make("Plain", Text, Loud, _plain),
    "count": make("Count", Words, Count, _count),
    "combine": make("Combine", Gathered, Summary, _combine),
    "plan": make("PlanStep", Words, Plan, _plan),
    "work": make("Work", Item, Done, _work),
    "merge": make("Merge", Items, Merged, _merge),
    "judge": make("Judge", Merged, Verdict, _judge),
}


def resolve(ref: str, config: dict[str, Any]) -> Any:
    if ref not in STEPS:
        raise GraphError(f"step {ref!r} is not a known step; known: {sorted(STEPS)}")
    return STEPS[ref]


def build(ref: str, config: dict[str, Any]) -> Any:
    return STEPS[ref](**config)


def wordy(**overrides: Any) -> dict[str, Any]:
    """DESIGN.md §5's example pipeline, as plain data."""
    nodes = [
        {"name": "split", "step": "split", "next": ["upper", "count"]},
        {"name": "upper", "step": "shout", "config": {"broken": True},
         "policy": {"timeout_s": 5, "retries": 2, "backoff_s": 0.01}, "fallback": "upper-plain", "next": "gather"},
        {"name": "upper-plain", "step": "plain", "next": "gather"},
        {"name": "count", "step": "count", "next": "gather"},
        {"name": "gather", "join": {"policy": "all", "timeout_s": 10}, "step": "combine", "next": "plan"},
        {"name": "plan", "step": "plan", "map": {"over": "tasks", "to": "work"}},
        {"name": "work", "step": "work", "next": "collect"},
        {"name": "collect", "join": {"policy": "all", "timeout_s": 30}, "step": "merge", "next": "judge"},
        {"name": "judge", "step": "judge", "routes": {"again": "plan", "done": "$end"}, "max_visits": 3,
         "on_limit": "$end"},
    ]
    data: dict[str, Any] = {"name": "wordy", "entry": "split", "nodes": nodes, "result": ["summary", "words", "merged"]}
    for name, patch in overrides.items():
        for node in nodes:
            if node["name"] == name.replace("_", "-"):
                node.update(patch)
    return data


def spec(data: dict[str, Any]) -> GraphSpec:
    return parse_pipeline(data, "wordy.yaml", resolve)


def go(data: dict[str, Any], requests: list[Any]) -> Any:
    outcome = run_pipeline(spec(data), requests, build_step=build, deps=object())
    assert outcome.duplicates == []  # never a second final result for a request
    return outcome


def test_design_example_fan_out_fallback_map_and_bounded_loop() -> None:
    started = time.monotonic()
    outcome = go(wordy(), [{"text": "hello big world"}])
    elapsed = time.monotonic() - started
    (result,) = outcome.results
    assert result.status == "ok", result.error
    # both fan-out branches reached the join; the broken one arrived as itself, through its fallback
    assert result.output["summary"] == "count={'count': 3}; upper={'shout': 'hello big world!'}"
    assert result.output["words"] == ["hello", "big", "world"]
    # every mapped item, in order
    assert result.output["merged"] == ["0:HELLO", "1:BIG", "2:WORLD"]
    # the loop ran judge three times, and the fourth visit took on_limit ($end)
    assert result.route.count("judge") == 3 and result.route[-1] == "judge (limit)"
    assert "upper (failed)" in result.route and "upper-plain" in result.route
    # judge said "again" three times: plan ran four times, each pass's map joined on its own
    assert result.route.count("plan") == 4 and result.route.count("collect") == 4 and result.route.count("work") == 12
    fallback_spans = [s for s in outcome.spans if s["step"] == "upper"]
    assert fallback_spans[0]["status"] == "fallback" and fallback_spans[0]["attempt"] == 3
    assert outcome.dead_letters == []  # a taken fallback is not a dead letter
    assert elapsed < 5  # a logical bound (three 10 ms backoffs), not a performance assertion


def test_join_any_goes_ahead_with_the_first_branch_and_ignores_the_rest() -> None:
    data = wordy(gather={"join": {"policy": "any"}})
    data["nodes"][1]["config"] = {}  # upper works
    (result,) = go(data, ["one two"]).results
    assert result.status == "ok"
    summary = result.output["summary"]
    assert summary.startswith("upper=") and "missing=['count']" in summary


def test_join_timeout_fires_with_what_arrived() -> None:
    """``at_least: 2`` of two branches, one of which dead-ends (fails): the join waits, then times out."""
    data = wordy(gather={"join": {"policy": {"at_least": 2}, "timeout_s": 5}})
    data["nodes"][1]["fallback"] = None
    data["nodes"][1]["next"] = "gather"
    outcome = go(data, ["one two"])
    (result,) = outcome.results
    # the upper branch failed (no fallback): with at_least 2 of 2 the policy can no longer be met
    assert result.status == "failed" and "upper" in (result.error or "")
    assert [d.step for d in outcome.dead_letters] == ["upper"]


def test_map_item_failure_is_missing_and_all_policy_fails_the_request() -> None:
    data = wordy(work={"config": {"fail_on": "big"}})
    outcome = go(data, ["hello big world"])
    (result,) = outcome.results
    assert result.status == "failed" and "collect" in (result.error or "") and "1:" in (result.error or "")
    assert len(outcome.results) == 1  # exactly one final result, although two items succeeded


def test_map_item_failure_with_at_least_goes_on_with_missing_index() -> None:
    data = wordy(work={"config": {"fail_on": "big"}}, collect={"join": {"policy": {"at_least": 2}}},
                 judge={"config": {"always": "done"}})
    (result,) = go(data, ["hello big world"]).results
    assert result.status == "ok", result.error
    assert result.output["merged"] == ["0:HELLO", "2:WORLD"]


def test_empty_map_joins_at_once() -> None:
    data = wordy(judge={"config": {"always": "done"}})
    data["nodes"][0]["next"] = ["upper", "count"]
    outcome = go(data, [{"text": " "}])  # no words: nothing to map
    (result,) = outcome.results
    assert result.status == "ok" and result.output["merged"] == []


def test_terminal_targets_set_the_status() -> None:
    for target, status in (("$end", "ok"), ("$reject", "rejected"), ("$block", "blocked"), ("$fail", "failed")):
        data = wordy(judge={"config": {"always": "done"}, "routes": {"again": "plan", "done": target}})
        (result,) = go(data, ["a b"]).results
        assert result.status == status, (target, result)


@pytest.mark.parametrize(
    ("patch", "node", "field", "words"),
    [
        ({"upper": {"step": "shoutt"}}, "upper", "step", "not a known step"),
        ({"upper": {"next": "nowhere"}}, "upper", "next", "'nowhere', which is not a node"),
        ({"judge": {"routes": {"again": "plan"}}}, "judge", "routes", "missing ['done']"),
        ({"judge": {"max_visits": None, "on_limit": "$fail"}}, "judge", "on_limit", "set max_visits"),
        ({"plan": {"map": {"over": "taskz", "to": "work"}}}, "plan", "map.over", "no list field 'taskz'"),
        ({"count": {"next": "plan"}}, "split", "next", "meet at"),
    ],
)
def test_load_time_errors_name_file_node_and_field(patch: dict[str, Any], node: str, field: str, words: str) -> None:
    with pytest.raises(GraphError) as err:
        spec(wordy(**patch))
    message = str(err.value)
    assert message.startswith(f"wordy.yaml, node {node!r}, field {field}:"), message
    assert words in message and "\n" not in message


def test_a_cycle_without_max_visits_is_refused() -> None:
    data = wordy()
    data["nodes"][-1].pop("max_visits")
    data["nodes"][-1].pop("on_limit")
    with pytest.raises(GraphError, match=r"wordy.yaml, node '\w+', field next: cycle .* has no node with max_visits"):
        spec(data)


def test_a_join_that_nothing_leads_to_is_refused() -> None:
    data = wordy()
    data["nodes"].append({"name": "lonely", "step": "combine", "join": {"policy": "all"}})
    with pytest.raises(GraphError, match=r"node 'lonely', field join: no fan-out"):
        spec(data)


def test_echo_runs_in_process_and_ids_are_per_tenant() -> None:
    results = run("echo", [{"id": "r-1", "text": "a", "tenant": "x"}, {"id": "r-1", "text": "b", "tenant": "y"}])
    assert [(r.tenant, r.answer, r.status) for r in results] == [("x", "a", "ok"), ("y", "b", "ok")]
    assert results[0].output == {"hops": 4}
