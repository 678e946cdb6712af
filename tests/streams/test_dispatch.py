from __future__ import annotations

import asyncio
import random

from streams.dispatch import KeyedDispatcher


def test_same_key_in_order_other_keys_in_parallel() -> None:
    async def go() -> tuple[list[tuple[str, int]], int]:
        d = KeyedDispatcher(limit=8)
        done: list[tuple[str, int]] = []
        running = {"now": 0, "max": 0}

        def job(key: str, n: int):  # type: ignore[no-untyped-def]
            async def run() -> None:
                running["now"] += 1
                running["max"] = max(running["max"], running["now"])
                await asyncio.sleep(random.uniform(0, 0.01))
                done.append((key, n))
                running["now"] -= 1

            return run

        for n in range(20):
            for key in ("a", "b", "c", "d"):
                await d.submit(key, job(key, n))
        await d.drain()
        return done, running["max"]

    done, peak = asyncio.run(go())
    for key in "abcd":
        assert [n for k, n in done if k == key] == list(range(20))
    assert 1 < peak <= 8


def test_limit_bounds_in_flight_and_errors_do_not_stop_others() -> None:
    async def go() -> int:
        d = KeyedDispatcher(limit=2)
        finished = 0

        async def boom() -> None:
            raise RuntimeError("job failed")

        async def ok() -> None:
            nonlocal finished
            assert d.running <= 2
            await asyncio.sleep(0.001)
            finished += 1

        for i in range(10):
            await d.submit(i % 3, boom if i == 4 else ok)
        await d.drain()
        return finished

    assert asyncio.run(go()) == 9


def test_backoff_gives_the_slot_to_other_sessions() -> None:
    """One request sleeping before its retry must not stall other sessions behind the only slot."""
    from streams.dispatch import sleep_without_slot

    async def go() -> list[str]:
        d = KeyedDispatcher(limit=1)
        order: list[str] = []

        async def retrying() -> None:
            order.append("a: attempt 1")
            await sleep_without_slot(0.2)  # backoff
            order.append("a: attempt 2")

        async def quick(name: str) -> None:
            order.append(name)

        await d.submit("session-a", retrying)
        await asyncio.sleep(0.01)
        await d.submit("session-b", lambda: quick("b"))
        await d.submit("session-a", lambda: quick("a: next message"))  # same session: waits for its turn
        await d.drain()
        return order

    assert asyncio.run(go()) == ["a: attempt 1", "b", "a: attempt 2", "a: next message"]
