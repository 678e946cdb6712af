"""A scripted OpenAI-compatible chat server on loopback for the devteam tests (aiohttp, in a thread).

It answers ``POST /v1/chat/completions`` from a script of :class:`Rule` s chosen by what the request
says: the agent's role (the system prompt's ``devteam role: <name>`` line) and strings the user
message must, or must not, contain (the task's module, the version, the feedback). Not by call
order, so parallel map branches may call in any interleaving. A request no rule matches gets HTTP
400 (``type=no_scripted_reply``), which the provider treats as fatal: a test fails loudly rather
than hanging on retries. Every exchange is kept, with the rule that answered it, for assertions.
Token counts are a deterministic function of the text (4 characters a token).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steps.deps import Deps, ResourceConfig
from steps.embedding import AsyncEmbedder, MiniLMEmbedder

from tests.loopback import LoopbackChatServer

__all__ = ["Exchange", "Rule", "ScriptedLLM", "deps_for", "tokens"]

_ROLE = re.compile(r"devteam role: (\w+)")


def tokens(text: str) -> int:
    return max(1, (len(text) + 3) // 4)


@dataclass(frozen=True)
class Rule:
    """Reply ``reply`` to the ``role`` agent when the user message holds every ``contains`` and no ``absent``."""

    name: str
    role: str
    reply: str
    contains: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()

    def matches(self, role: str, user: str) -> bool:
        return (role == self.role and all(c in user for c in self.contains)
                and not any(a in user for a in self.absent))


@dataclass(frozen=True)
class Exchange:
    """One request the server answered (``rule`` is None when no rule matched)."""

    role: str
    model: str
    user: str
    rule: str | None
    input_tokens: int
    output_tokens: int


class ScriptedLLM(LoopbackChatServer):
    """The server; use as a context manager, or ``start()`` / ``stop()``."""

    def __init__(self, rules: list[Rule]) -> None:
        super().__init__("devteam-llm")
        self.rules = list(rules)
        self.exchanges: list[Exchange] = []

    def __enter__(self) -> ScriptedLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def by(self, role: str, rule: str | None = None) -> list[Exchange]:
        """The exchanges with one agent (answered by ``rule`` when given), in arrival order."""
        return [e for e in self.exchanges if e.role == role and (rule is None or e.rule == rule)]

    def answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        messages = body.get("messages") or []
        system = " ".join(str(m.get("content")) for m in messages if m.get("role") == "system")
        user = "\n".join(str(m.get("content")) for m in messages if m.get("role") == "user")
        found = _ROLE.search(system)
        role = found.group(1) if found else "unknown"
        rule = next((r for r in self.rules if r.matches(role, user)), None)
        prompt_tokens = tokens(system + user)
        reply = rule.reply if rule is not None else ""
        self.exchanges.append(Exchange(role, str(body.get("model")), user, rule.name if rule else None,
                                       prompt_tokens, tokens(reply)))
        if rule is None:
            return 400, {"error": {"type": "no_scripted_reply", "code": f"role_{role}"}}
        return 200, {
            "id": f"cmpl-{len(self.exchanges)}", "object": "chat.completion", "model": body.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": tokens(reply),
                      "total_tokens": prompt_tokens + tokens(reply)},
        }

    async def completions(self, request: Any) -> Any:
        from aiohttp import web

        status, payload = self.answer(await request.json())
        return web.json_response(payload, status=status)


def deps_for(server: ScriptedLLM | None, index_dir: Path, prices: dict[str, tuple[float, float]] | None = None) -> Deps:
    """Deps on the scripted server (``llm_model="devteam-script"``), or offline ones when ``server`` is None.

    The embedder is the real one, which loads nothing until asked to embed (the devteam never is).
    """
    embedder = AsyncEmbedder(MiniLMEmbedder())
    if server is None:
        return Deps(ResourceConfig(index_dir=index_dir), embedder=embedder)
    config = ResourceConfig(index_dir=index_dir, llm_provider="openai", llm_base_url=server.base_url,
                            llm_model="devteam-script", llm_timeout_s=10.0, prices=dict(prices or {}))
    return Deps(config, embedder=embedder)
