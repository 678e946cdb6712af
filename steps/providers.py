"""Generation providers: an OpenAI-compatible HTTP client and an offline extractive generator.

Both implement :class:`Provider`. The HTTP provider speaks ``POST {base_url}/chat/completions``
(OpenAI, vLLM, Ollama's ``/v1``, llama.cpp server). The extractive provider needs no LLM: it
answers with the sentences of the retrieved passages closest to the question, each tagged with
its ``[n]`` citation, led by the API the question asks about (:mod:`steps.answer`), and says it does
not know when nothing relevant was retrieved.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections import OrderedDict
from datetime import timezone
from email.utils import parsedate_to_datetime
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from steps.answer import Candidate, compose, lexical_scores, named_api, read_passages
from steps.base import FatalStepError, RetryableStepError, Turn
from steps.embedding import AsyncEmbedder
from steps.markup import clean_markup, split_sentences
from steps.smalltalk import smalltalk_reply

__all__ = [
    "ChatReply",
    "Completion",
    "LLMNotConfiguredError",
    "ToolCall",
    "ExtractiveProvider",
    "GenerationRequest",
    "OpenAIProvider",
    "Provider",
    "SYSTEM_PROMPT",
    "cited_numbers",
    "clean_markup",
    "error_summary",
    "parse_retry_after",
    "split_sentences",
]

SYSTEM_PROMPT = (
    "You are a support assistant. Answer only from the numbered sources in the user message and cite "
    "them as [n]. If the sources do not answer the question, say you don't know. Be concise."
)
NO_ANSWER = "I don't know: the knowledge base has nothing relevant to this question."
MAX_RETRY_AFTER_S = 300.0  # a server asking for longer is treated as asking for this
_ERROR_FIELD = re.compile(r"[A-Za-z][\w.-]{0,63}")


@dataclass
class GenerationRequest:
    """What the generation step asks a provider for."""

    question: str
    passages: list[dict[str, Any]]
    history: list[Turn] = field(default_factory=list)
    intent: str = "howto"
    max_tokens: int = 400
    model: str | None = None  # the tier's model; None: the provider's configured one


class LLMNotConfiguredError(FatalStepError):
    """A step needs a chat model (tool calling, agents) and only the offline generator is configured."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"{what} needs an OpenAI-compatible model: set CONVEYOR_LLM_PROVIDER=openai and CONVEYOR_LLM_BASE_URL "
            "(e.g. http://localhost:8000/v1), plus CONVEYOR_LLM_MODEL and CONVEYOR_LLM_API_KEY if it needs them"
        )


@dataclass
class ToolCall:
    """One function call a chat model asked for; ``arguments`` is its parsed JSON (``{}`` if unreadable)."""

    id: str
    name: str
    arguments: dict[str, Any]
    raw_arguments: str = ""


@dataclass
class ChatReply:
    """A chat model's answer: text, and/or tool calls (OpenAI ``tool_calls``)."""

    content: str
    tool_calls: list[ToolCall]
    model: str
    input_tokens: int
    output_tokens: int
    finish_reason: str = "stop"

    def assistant_message(self) -> dict[str, Any]:
        """The message to append to the conversation before the tool results."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content or None}
        if self.tool_calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function",
                 "function": {"name": c.name, "arguments": c.raw_arguments or json.dumps(c.arguments)}}
                for c in self.tool_calls
            ]
        return message


@dataclass
class Completion:
    text: str
    model: str
    input_tokens: int
    output_tokens: int
    passages: list[dict[str, Any]] = field(default_factory=list)


class Provider(Protocol):
    model: str

    async def generate(self, request: GenerationRequest) -> Completion: ...

    async def close(self) -> None: ...


class ChatModel(Protocol):
    """A model that holds a conversation and calls tools (the OpenAI-compatible provider is one)."""

    model: str

    async def chat(
        self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None, model: str | None = None,
        max_tokens: int = 800, temperature: float = 0.0,
    ) -> ChatReply: ...


def cited_numbers(text: str, limit: int) -> list[int]:
    """The distinct ``[n]`` citation numbers in ``text`` that refer to one of ``limit`` sources."""
    seen: list[int] = []
    for match in re.finditer(r"\[(\d+)\]", text):
        n = int(match.group(1))
        if 1 <= n <= limit and n not in seen:
            seen.append(n)
    return seen


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from an HTTP ``Retry-After`` value (delta-seconds or HTTP-date), capped.

    ``None`` when absent or unreadable; a date in the past gives 0. ``now`` is a ``time.time()``.
    """
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # an HTTP-date is always GMT
            when = when.replace(tzinfo=timezone.utc)
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def error_summary(body: str) -> str:
    """What of a provider's error body is safe to log: ``error.type`` and ``error.code`` only.

    Never ``error.message`` nor raw text: servers echo the prompt there, and the runtime writes error
    messages to logs, results, spans and dead letters. Values that are not short identifiers are dropped.
    """
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return ""
    parts: list[str] = []
    for key in ("type", "code"):
        value = error.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 100_000:
            parts.append(f"{key}={value}")
        elif isinstance(value, str) and _ERROR_FIELD.fullmatch(value):
            parts.append(f"{key}={value}")
    return ", ".join(parts)


def _count(usage: dict[str, Any], key: str) -> int:
    """A token count from ``usage`` (0 when missing, null or not a number)."""
    value = usage.get(key)
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def render_sources(passages: list[dict[str, Any]]) -> str:
    return "\n\n".join(f"[{i}] {p['title']} ({p['source']})\n{p['text']}" for i, p in enumerate(passages, 1))


class OpenAIProvider:
    """Chat completions over HTTP. 429/5xx/timeouts are retryable; other 4xx are fatal.

    ``timeout_s`` bounds each call. A 429/503's ``Retry-After`` becomes the error's ``retry_after_s``.
    Error messages carry the status, the URL and :func:`error_summary` of the body, never the body.
    """

    def __init__(self, base_url: str, model: str, api_key: str = "", timeout_s: float = 20.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.timeout_s = timeout_s
        self._sessions: dict[asyncio.AbstractEventLoop, Any] = {}

    def _session(self) -> Any:
        import aiohttp

        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            # limit=0: the default 100 connections would cap a step's concurrency
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
            self._sessions[loop] = session
        return session

    def messages(self, request: GenerationRequest) -> list[dict[str, str]]:
        msgs = [{"role": "system", "content": SYSTEM_PROMPT}]
        for turn in request.history:
            msgs.append({"role": "user", "content": turn.question})
            msgs.append({"role": "assistant", "content": turn.answer})
        if request.passages:
            content = f"Sources:\n{render_sources(request.passages)}\n\nQuestion: {request.question}"
        else:
            content = request.question
        msgs.append({"role": "user", "content": content})
        return msgs

    async def _post(self, payload: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """POST ``payload`` to ``/chat/completions``: (``choices[0].message``, ``usage``), errors classified."""
        import aiohttp

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        url = f"{self.base_url}/chat/completions"
        try:
            async with self._session().post(
                url, json=payload, headers=headers, timeout=aiohttp.ClientTimeout(total=self.timeout_s)
            ) as resp:
                body = await resp.text()
                if resp.status >= 400:
                    raise self._status_error(url, resp.status, body, resp.headers.get("Retry-After"))
                data = await resp.json(content_type=None)
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as exc:
            raise RetryableStepError(f"LLM at {url} unreachable: {exc!r}") from exc
        try:
            choice = data["choices"][0]
            message = dict(choice["message"])
            message.setdefault("finish_reason", choice.get("finish_reason") or "stop")
        except (KeyError, IndexError, TypeError) as exc:
            keys = sorted(data)[:10] if isinstance(data, dict) else type(data).__name__
            raise FatalStepError(
                f"LLM at {url} returned no choices[0].message (top-level keys: {keys}): "
                "check that CONVEYOR_LLM_BASE_URL is an OpenAI-compatible /v1 endpoint"
            ) from exc
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        return message, usage

    async def generate(self, request: GenerationRequest) -> Completion:
        model = request.model or self.model
        payload = {"model": model, "messages": self.messages(request), "max_tokens": request.max_tokens,
                   "temperature": 0}
        message, usage = await self._post(payload)
        text = message.get("content") or ""
        if not isinstance(text, str):
            raise FatalStepError(f"LLM at {self.base_url} returned a non-text message content ({type(text).__name__})")
        return Completion(
            text=text.strip(),
            model=model,  # the configured name: it keys the price table
            input_tokens=_count(usage, "prompt_tokens"),
            output_tokens=_count(usage, "completion_tokens"),
            passages=request.passages,
        )

    async def chat(
        self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None, model: str | None = None,
        max_tokens: int = 800, temperature: float = 0.0,
    ) -> ChatReply:
        """One chat completion, with ``tools`` offered (OpenAI function calling) when given."""
        chosen = model or self.model
        payload: dict[str, Any] = {"model": chosen, "messages": messages, "max_tokens": max_tokens,
                                   "temperature": temperature}
        if tools:
            payload["tools"] = tools
        message, usage = await self._post(payload)
        calls: list[ToolCall] = []
        raw_calls = message.get("tool_calls") or []
        if not isinstance(raw_calls, list):
            raise FatalStepError(f"LLM at {self.base_url} returned message.tool_calls as {type(raw_calls).__name__}, "
                                 "not a list: is it an OpenAI-compatible endpoint?")
        for i, raw in enumerate(raw_calls):
            function = raw.get("function") if isinstance(raw, dict) else None
            if not isinstance(function, dict):
                raise FatalStepError(f"LLM at {self.base_url} returned tool_calls[{i}] without a function object: "
                                     "is it an OpenAI-compatible endpoint?")
            text = function.get("arguments") or "{}"
            try:
                parsed = json.loads(text) if isinstance(text, str) else dict(text)
            except ValueError:
                parsed = {}
            calls.append(ToolCall(id=str(raw.get("id") or f"call_{i}"), name=str(function.get("name") or ""),
                                  arguments=parsed if isinstance(parsed, dict) else {},
                                  raw_arguments=text if isinstance(text, str) else json.dumps(text)))
        content = message.get("content") or ""
        return ChatReply(
            content=content.strip() if isinstance(content, str) else "",
            tool_calls=calls,
            model=chosen,
            input_tokens=_count(usage, "prompt_tokens"),
            output_tokens=_count(usage, "completion_tokens"),
            finish_reason=str(message.get("finish_reason") or "stop"),
        )

    @staticmethod
    def _status_error(url: str, status: int, body: str, retry_after: str | None) -> RetryableStepError | FatalStepError:
        summary = error_summary(body)
        detail = f" ({summary})" if summary else ""
        if status in (408, 409, 429) or status >= 500:
            wait = parse_retry_after(retry_after) if status in (429, 503) else None
            hint = f"; retry after {wait:.3g}s as it asked" if wait is not None else ""
            return RetryableStepError(f"LLM at {url} answered HTTP {status}{detail}{hint}", retry_after_s=wait)
        return FatalStepError(
            f"LLM at {url} refused the request with HTTP {status}{detail} "
            "(check CONVEYOR_LLM_MODEL and CONVEYOR_LLM_API_KEY)"
        )

    async def close(self) -> None:
        for session in self._sessions.values():
            if not session.closed:
                await session.close()
        self._sessions.clear()


_FOLLOW_UP = re.compile(r"^(and|but|also|so|then|what about|how about|why|ok|okay)\b|\b(it|that|this|them|those|these)\b", re.I)


class ExtractiveProvider:
    """Offline generator: the API that matches the question, then its best sentences, with ``[n]`` tags.

    Sentences are ranked lexically against the question (:mod:`steps.answer`, no model); only the
    ``rerank`` best, plus the opening sentence of up to ``rerank_apis`` documented APIs, are scored
    with the embedder, and their vectors are cached, so a request embeds its question and at most
    ``rerank + rerank_apis`` sentences instead of every sentence of every passage
    (0.4–0.6 s per request before, issue 8). It says it does not know when no sentence reaches
    ``min_score`` cosine similarity and the question names none of the passages' APIs.
    """

    model = "conveyor-extractive"

    def __init__(
        self, embedder: AsyncEmbedder, max_sentences: int = 3, min_score: float = 0.3, cache_size: int = 10_000,
        rerank: int = 2, rerank_apis: int = 12, lexical_weight: float = 0.4, rank_prior: float = 0.01,
        name_descriptions: bool = True,
    ) -> None:
        self.embedder = embedder
        self.max_sentences = max_sentences
        self.min_score = min_score
        self.cache_size = cache_size
        self.rerank = rerank
        self.rerank_apis = rerank_apis
        self.rank_prior = rank_prior  # per rank of the passage (retrieval order), off a sentence's score
        self.lexical_weight = lexical_weight
        self.name_descriptions = name_descriptions
        # sentence -> vector: popular pages are retrieved again and again (about 1.5 KB a sentence)
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    async def _sentence_vectors(self, sentences: list[str]) -> np.ndarray:
        missing = list(dict.fromkeys(s for s in sentences if s not in self._cache))
        if missing:
            for sentence, vector in zip(missing, await self.embedder.embed(missing), strict=True):
                self._cache[sentence] = vector
        for sentence in sentences:
            self._cache.move_to_end(sentence)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return np.stack([self._cache[s] for s in sentences])

    def _embedded_text(self, candidate: Candidate, describes: bool) -> str:
        """What is embedded for a sentence: an API's opening sentence goes with the API's short name
        (``split: Return a list of the words in the string``), so that the name counts in its meaning."""
        if describes and self.name_descriptions and candidate.owner:
            return f"{candidate.owner.rsplit('.', 1)[-1]}: {candidate.text}"
        return candidate.text

    def _count(self, text: str) -> int:
        counter = getattr(self.embedder.embedder, "count_tokens", None)
        return int(counter(text)) if counter else len(text.split())

    async def generate(self, request: GenerationRequest) -> Completion:
        passages = list(request.passages)
        query = request.question
        if request.history and (len(query.split()) <= 8 or _FOLLOW_UP.search(query)):
            last = request.history[-1]
            query = f"{last.question} {query}"  # a follow-up is read in the context of the last question
            known = {p["source"] for p in passages}
            passages += [p for p in last.passages if p["source"] not in known]
        if request.intent == "smalltalk":
            text = smalltalk_reply(request.question)
            return await self._completion(text, request.question, [])
        reading = read_passages(passages)
        if not reading.candidates:
            return await self._completion(NO_ANSWER, request.question, [])
        lexical = lexical_scores(query, reading)
        # a small prior for each passage's opening sentences and for higher-ranked passages
        prior = [0.02 * (c.position == 0) - self.rank_prior * c.passage for c in reading.candidates]
        shortlist = sorted(range(len(lexical)), key=lambda k: -(lexical[k] + prior[k]))[: self.rerank]
        # and what the first few documented APIs do, so that the lead API is chosen on meaning too
        described = sorted(reading.descriptions(), key=lambda k: -(lexical[k] + prior[k]))[: self.rerank_apis]
        shortlist += [k for k in described if k not in shortlist]
        query_vector = (await self.embedder.embed([query]))[0]
        vectors = await self._sentence_vectors([self._embedded_text(reading.candidates[k], k in described) for k in shortlist])
        cosine = vectors @ query_vector
        w = self.lexical_weight
        scores = [w * (lex + p) for lex, p in zip(lexical, prior, strict=True)]
        for k, cos in zip(shortlist, cosine, strict=True):
            scores[k] += (1 - w) * float(cos)
        if float(cosine.max()) < self.min_score and not named_api(query, reading):
            return await self._completion(NO_ANSWER, request.question, [])
        text, used = compose(query, reading, scores, max_sentences=self.max_sentences)
        if not text:
            return await self._completion(NO_ANSWER, request.question, [])
        return await self._completion(text, request.question, [passages[i] for i in used])

    async def _completion(self, text: str, question: str, cited: list[dict[str, Any]]) -> Completion:
        prompt = question + "".join(p["text"] for p in cited)
        tokens_in, tokens_out = await self.embedder.run_sync(lambda: (self._count(prompt), self._count(text)))
        return Completion(text=text, model=self.model, input_tokens=tokens_in, output_tokens=tokens_out, passages=cited)

    async def close(self) -> None:
        return None
