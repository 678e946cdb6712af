"""Ordered acks: whatever order messages finish in, only a contiguous done prefix is ever released."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streams.acks import OrderedAcks


def test_out_of_order_completion_waits_for_the_oldest() -> None:
    acks: OrderedAcks[int] = OrderedAcks()
    slots = [acks.received("p0", offset, offset) for offset in (100, 101, 102, 103)]
    # faust 0.15.3 would commit 104 given acks for 101..103 with 100 in flight; here nothing is released
    assert acks.done(slots[1]) == [] and acks.done(slots[2]) == [] and acks.done(slots[3]) == []
    assert acks.oldest_pending("p0") == 100
    assert acks.done(slots[0]) == [100, 101, 102, 103]
    assert acks.pending() == 0 and acks.oldest_pending("p0") is None


def test_partitions_are_independent() -> None:
    acks: OrderedAcks[str] = OrderedAcks()
    a0, b0, a1 = acks.received("a", 0, "a0"), acks.received("b", 0, "b0"), acks.received("a", 1, "a1")
    assert acks.done(b0) == ["b0"]
    assert acks.done(a1) == [] and acks.pending("a") == 2
    assert acks.done(a0) == ["a0", "a1"]


@given(st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=60), st.randoms(use_true_random=False))
def test_released_is_always_a_delivered_prefix(partitions: list[int], rnd: object) -> None:
    acks: OrderedAcks[tuple[int, int]] = OrderedAcks()
    next_offset = {p: 0 for p in range(4)}
    slots = []
    for p in partitions:
        slots.append(acks.received(p, next_offset[p], (p, next_offset[p])))
        next_offset[p] += 1
    order = list(range(len(slots)))
    rnd.shuffle(order)  # type: ignore[attr-defined]
    released: dict[int, list[int]] = {p: [] for p in range(4)}
    finished: set[int] = set()
    for i in order:
        finished.add(i)
        for p, offset in acks.done(slots[i]):
            released[p].append(offset)
        for p in range(4):
            # released offsets of each partition: exactly 0..k-1, and every one of them has finished
            assert released[p] == list(range(len(released[p])))
            done_offsets = {slots[j].offset for j in finished if slots[j].partition == p}
            assert set(released[p]) <= done_offsets
    assert all(len(released[p]) == next_offset[p] for p in range(4))


def test_delivery_tracker_reports_a_hole_once_then_accepts_it_as_a_gap() -> None:
    from streams.acks import DeliveryTracker, Jump

    t = DeliveryTracker()
    assert t.delivered("p", 100, committed=100) is None
    assert t.delivered("p", 101) is None
    assert t.delivered("p", 105) == Jump("p", 102, 104, again=False)  # 102..104 dropped: seek back
    assert t.delivered("p", 102) is None and t.delivered("p", 103) is None  # the seek re-delivers them (rewind)
    t2 = DeliveryTracker()
    assert t2.delivered("p", 10, committed=10) is None
    assert t2.delivered("p", 13) == Jump("p", 11, 12, again=False)
    t2.sought("p", 11)  # the agent sought back to 11 ... and the log really has nothing at 11..12
    assert t2.delivered("p", 13) == Jump("p", 11, 12, again=True)  # a real gap: may be committed over
    assert t2.delivered("p", 14) is None
    t2.sought("p", 20)
    assert t2.delivered("p", 20) is None  # the hole filled in
    t2.reset()  # a rebalance: expectations start again from the committed offset
    assert t2.delivered("p", 31, committed=25) == Jump("p", 25, 30, again=False)
    # offsets below the committed offset are done (by another worker), not missing
    t3 = DeliveryTracker()
    assert t3.delivered("p", 5, committed=5) is None
    assert t3.delivered("p", 50, committed=50) is None


def test_commit_guard_commits_only_a_run_starting_at_the_committed_offset() -> None:
    """faust 0.15.3: committed 100 and acked 101..103 committed 104 (100 was still in flight)."""
    from collections import defaultdict
    from types import SimpleNamespace

    from faust.transport.consumer import Consumer
    from intervaltree import IntervalTree

    from streams.faust_adapter import install_commit_guards

    install_commit_guards()

    def consumer(committed: int | None, acked: list[int]) -> SimpleNamespace:
        c = SimpleNamespace(_acked=defaultdict(list), _acked_index=defaultdict(set), _gap=defaultdict(IntervalTree),
                            _committed_offset=defaultdict(lambda: None))
        c._committed_offset["tp"] = committed
        c._acked["tp"] = list(acked)
        c._acked_index["tp"] = set(acked)
        return c

    assert Consumer._new_offset(consumer(100, [101, 102, 103]), "tp") is None
    assert Consumer._new_offset(consumer(100, [100, 101, 103]), "tp") == 102
    assert Consumer._new_offset(consumer(None, [5, 6, 7]), "tp") == 8  # a new group: the first delivered is the start
    c = consumer(100, [100, 104])
    c._gap["tp"].addi(101, 104)  # a confirmed gap counts as acked
    assert Consumer._new_offset(c, "tp") == 105
