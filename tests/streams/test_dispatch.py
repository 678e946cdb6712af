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
            assert d.in_flight <= 2
            await asyncio.sleep(0.001)
            finished += 1

        for i in range(10):
            await d.submit(i % 3, boom if i == 4 else ok)
        await d.drain()
        return finished

    assert asyncio.run(go()) == 9
