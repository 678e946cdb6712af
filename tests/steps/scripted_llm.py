"""A scripted OpenAI-compatible chat server on loopback: each model name plays its own list of replies.

Unlike ``tests.conftest.FakeLLM`` (fixed behaviours), a test writes the conversation: which tool calls
the model asks for on each turn, and its final answer. The last reply of a script repeats once the
script runs out (a model that never stops calling tools). Every request body is kept, per model, so a
test can check what the planner sent back (tool results, bad-argument errors)::

    llm.script("m1", [tool_calls(("calculator", {"expression": "2+2"})), answer("4")])
"""

from __future__ import annotations

import json
import threading
from typing import Any

from tests.loopback import LoopbackChatServer

__all__ = ["ScriptedLLM", "answer", "failure", "tool_calls"]

USAGE = {"prompt_tokens": 100, "completion_tokens": 100}


def tool_calls(*calls: tuple[str, dict[str, Any] | str], usage: dict[str, int] | None = None) -> dict[str, Any]:
    """A reply asking for ``calls`` (name, arguments as a dict, or as raw text that may not be JSON)."""
    listed = [{"id": f"call_{i}", "type": "function",
               "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)}}
              for i, (name, args) in enumerate(calls)]
    return {"message": {"role": "assistant", "content": None, "tool_calls": listed}, "finish_reason": "tool_calls",
            "usage": usage or USAGE}


def answer(text: str, usage: dict[str, int] | None = None) -> dict[str, Any]:
    """A final reply with no tool call."""
    return {"message": {"role": "assistant", "content": text}, "finish_reason": "stop", "usage": usage or USAGE}


def failure(status: int) -> dict[str, Any]:
    """An HTTP error instead of a reply."""
    return {"status": status}


class ScriptedLLM(LoopbackChatServer):
    """The server, run on its own event loop in a thread (the step under test runs on another loop)."""

    def __init__(self) -> None:
        super().__init__("scripted-llm")
        self.scripts: dict[str, list[dict[str, Any]]] = {}
        self.requests: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def script(self, model: str, replies: list[dict[str, Any]]) -> None:
        with self._lock:
            self.scripts[model] = list(replies)
            self.requests[model] = []

    def calls(self, model: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.requests.get(model, []))

    def _next(self, body: dict[str, Any]) -> dict[str, Any]:
        model = str(body.get("model"))
        with self._lock:
            if model not in self.scripts:
                return {"status": 404}
            seen = self.requests.setdefault(model, [])
            seen.append(body)
            script = self.scripts[model]
            return script[min(len(seen), len(script)) - 1]

    async def completions(self, request: Any) -> Any:
        from aiohttp import web

        body = await request.json()
        reply = self._next(body)
        if "status" in reply:
            return web.json_response({"error": {"type": "scripted", "code": reply["status"]}}, status=reply["status"])
        return web.json_response({
            "id": "cmpl-scripted", "object": "chat.completion", "model": body["model"],
            "choices": [{"index": 0, "message": reply["message"], "finish_reason": reply["finish_reason"]}],
            "usage": {**reply["usage"], "total_tokens": sum(reply["usage"].values())},
        })
