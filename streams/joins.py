"""Join buffers: the branches of one fan-out, gathered in a changelogged table until the join fires.

Pure functions over plain dicts (the table's values), so the same logic runs in a worker and in
``streams.testing``. One buffer per (request, fan-out execution): a fan-out inside a loop is joined
once per pass. A branch arriving twice (re-delivery after a crash) overwrites itself; a branch
arriving after the join fired is ignored. Joins count branches, not nodes: a branch that took its
fallback arrives under its own label.
"""

from __future__ import annotations

from typing import Any, Literal

from streams.envelope import Envelope, Frame, Usage
from streams.graph import Join

__all__ = ["Decision", "base_envelope", "decide", "join_input", "new_buffer", "record", "tick_envelope"]

Decision = Literal["wait", "fire", "fail"]


def new_buffer(env: Envelope) -> dict[str, Any]:
    """An empty buffer for the fan-out ``env``'s innermost frame belongs to."""
    frame = env.frames[-1]
    base = env.model_copy(deep=True)
    base.frames = base.frames[:-1]
    base.route = list(frame.base_route)
    base.usage = frame.base_usage.model_copy()
    base.visits = dict(frame.base_visits)  # the fan-out's own counts, not those of whichever branch came first
    base.tick = False
    deadline = None
    if frame.timeout_s is not None:
        deadline = frame.started_at + frame.timeout_s
    if env.deadline is not None:
        deadline = env.deadline if deadline is None else min(deadline, env.deadline)
    return {
        "kind": frame.kind,
        "fanout": frame.fanout,
        "expected": list(frame.expected),
        "arrived": {},
        "failed": {},
        "routes": {},
        "usage": {},
        "fired": False,
        "deadline": deadline,
        "base": base.model_dump(mode="json"),
        "frame": {**frame.model_dump(mode="json"), "local": {}, "last": {}, "failed": None},
    }


def tick_envelope(buffer: dict[str, Any]) -> Envelope:
    """The timeout tick of a waiting buffer: its fan-out's envelope and frame, marked ``tick`` (no branch)."""
    env = Envelope.model_validate(buffer["base"])
    env.frames.append(Frame.model_validate(buffer["frame"]))
    env.tick = True
    return env


def record(buffer: dict[str, Any], frame: Frame, route: list[str], usage: Usage) -> dict[str, Any]:
    """The buffer with one branch's arrival (its last output, or why it failed) recorded."""
    out = {**buffer, "arrived": dict(buffer["arrived"]), "failed": dict(buffer["failed"]),
           "routes": dict(buffer["routes"]), "usage": dict(buffer["usage"])}
    label = frame.branch
    if label not in buffer["expected"]:  # a map over an empty list, or a branch of another run of the fan-out
        return out
    out["routes"][label] = list(route)
    out["usage"][label] = usage.model_dump()
    if frame.failed is not None:
        out["failed"][label] = frame.failed
        out["arrived"].pop(label, None)
    else:
        out["arrived"][label] = frame.last
        out["failed"].pop(label, None)
    return out


def decide(buffer: dict[str, Any], join: Join, *, timed_out: bool = False) -> Decision:
    """Fire when the policy is met; fail when it can no longer be; at the timeout, fire with what arrived."""
    expected = len(buffer["expected"])
    arrived = len(set(buffer["arrived"]) & set(buffer["expected"]))
    needed = join.needed(expected)
    if arrived >= needed:
        return "fire"
    if expected - len(buffer["failed"]) < needed:
        return "fail"
    if timed_out:
        return "fire" if arrived else "fail"
    return "wait"


def missing(buffer: dict[str, Any]) -> list[Any]:
    labels = [label for label in buffer["expected"] if label not in buffer["arrived"]]
    return [int(label) for label in labels] if buffer["kind"] == "map" else labels


def join_input(buffer: dict[str, Any], view: dict[str, Any]) -> dict[str, Any]:
    """The join step's input: the state view plus ``branches`` (static) or ``items`` (map), and ``missing``."""
    arrived = buffer["arrived"]
    gathered: dict[str, Any]
    if buffer["kind"] == "map":
        gathered = {"items": [arrived[label] for label in buffer["expected"] if label in arrived]}
    else:
        gathered = {"branches": {label: arrived[label] for label in buffer["expected"] if label in arrived}}
    return {**view, **gathered, "missing": missing(buffer)}


def base_envelope(buffer: dict[str, Any]) -> Envelope:
    """The envelope the join continues with: the fan-out's, plus every branch's route and usage, in branch order."""
    env = Envelope.model_validate(buffer["base"])
    for label in buffer["expected"]:
        env.route.extend(buffer["routes"].get(label, []))
        u = buffer["usage"].get(label)
        if u:
            env.usage.add(int(u["input_tokens"]), int(u["output_tokens"]), float(u["cost_usd"]))
            env.usage.tiers.update(u.get("tiers") or {})  # the tiers chosen inside the branch
            env.usage.budget = env.usage.budget or u.get("budget")
    return env


def failure_reason(buffer: dict[str, Any], join_name: str, timed_out: bool, deadline_passed: bool = False) -> str:
    failed = "; ".join(f"{label}: {why}" for label, why in buffer["failed"].items())
    if deadline_passed:
        return f"{join_name}: the request's deadline passed while the join waited; missing {missing(buffer)}"
    if timed_out and not buffer["arrived"]:
        return f"{join_name}: no branch arrived before the join's timeout" + (f" ({failed})" if failed else "")
    return f"{join_name}: the join's policy can no longer be met; failed branches: {failed or 'none'}"
