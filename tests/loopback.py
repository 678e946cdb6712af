"""A real OpenAI-compatible HTTP server on 127.0.0.1, run in a thread, for tests of the HTTP providers.

Subclasses implement :meth:`LoopbackChatServer.completions` (an aiohttp handler of
``POST /v1/chat/completions``); this base owns the thread, the event loop and the port.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

__all__ = ["LoopbackChatServer"]


class LoopbackChatServer:
    """Serve ``POST /v1/chat/completions`` on a free loopback port until :meth:`stop`."""

    def __init__(self, name: str = "loopback-llm") -> None:
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name=name)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> Any:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"{type(self).__name__} did not start listening within 10 s")
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def completions(self, request: Any) -> Any:
        raise NotImplementedError

    def _serve(self) -> None:
        from aiohttp import web

        async def start() -> None:
            app = web.Application()
            app.router.add_post("/v1/chat/completions", self.completions)
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self._ready.set()

        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(start())
        self._loop.run_forever()
