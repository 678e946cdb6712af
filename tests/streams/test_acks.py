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
