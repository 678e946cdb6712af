"""The OpenAI-compatible provider against a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
import contextlib
from email.utils import formatdate
from typing import Any

import pytest

from steps.base import FatalStepError, RetryableStepError, StepContext
from steps.deps import Deps, ResourceConfig
from steps.generation import cost_usd
from steps.providers import GenerationRequest, OpenAIProvider, error_summary, parse_retry_after
from steps.registry import resolve
from streams.graph import Policy
from streams.policy import run_with_policy

PASSAGES = [{"source": "library/stdtypes.html", "title": "Lists", "text": "list.reverse() reverses in place.", "score": 0.8}]


def generate(provider: OpenAIProvider, **kw: Any) -> Any:
    async def go() -> Any:
        try:
            return await provider.generate(GenerationRequest(question="How do I reverse a list?", passages=PASSAGES, **kw))
        finally:
            await provider.close()

    return asyncio.run(go())


def test_answer_tokens_and_prompt(fake_llm: Any) -> None:
    completion = generate(OpenAIProvider(fake_llm.base_url, "ok", api_key="sk-test"))
    assert completion.text.endswith("[1].")
    assert (completion.input_tokens, completion.output_tokens) == (120, 12)
    sent = fake_llm.requests[-1]
    assert sent["messages"][0]["role"] == "system"
    assert "[1] Lists (library/stdtypes.html)" in sent["messages"][-1]["content"]


def test_history_becomes_prior_messages(fake_llm: Any) -> None:
    from steps.base import Turn

    history = [Turn(request_id="r0", question="What is a list?", answer="A mutable sequence [1].")]
    generate(OpenAIProvider(fake_llm.base_url, "ok"), history=history)
    roles = [m["role"] for m in fake_llm.requests[-1]["messages"]]
    assert roles == ["system", "user", "assistant", "user"]


def test_server_errors_are_retryable_and_client_errors_fatal(fake_llm: Any) -> None:
    with pytest.raises(RetryableStepError, match="503"):
        generate(OpenAIProvider(fake_llm.base_url, "flaky"))
    with pytest.raises(FatalStepError, match="400"):
        generate(OpenAIProvider(fake_llm.base_url, "refuse"))


def test_unreachable_and_slow_servers_are_retryable(fake_llm: Any) -> None:
    with pytest.raises(RetryableStepError, match="unreachable"):
        generate(OpenAIProvider("http://127.0.0.1:1/v1", "ok", timeout_s=2))
    with pytest.raises(RetryableStepError):
        generate(OpenAIProvider(fake_llm.base_url, "slow", timeout_s=0.3))


def test_generation_step_records_cost_from_the_price_table(fake_llm: Any, tmp_path: Any) -> None:
    config = ResourceConfig(index_dir=tmp_path, llm_provider="openai", llm_base_url=fake_llm.base_url,
                            llm_model="ok", prices={"ok": (1.0, 2.0)})
    deps = Deps(config)
    step = resolve("generation").build({})
    ctx = StepContext(request_id="r-1")

    async def go() -> Any:
        await step.warm_up(deps)
        try:
            return await step.run(step.Input(text="How do I reverse a list?", passages=PASSAGES), ctx)
        finally:
            await deps.close()

    out = asyncio.run(go())
    assert [c.source for c in out.citations] == ["library/stdtypes.html"]
    assert ctx.usage[0].cost_usd == pytest.approx(cost_usd({"ok": (1.0, 2.0)}, "ok", 120, 12)) == pytest.approx(0.000144)


PII_QUESTION = "Why was jane.doe@example.com charged twice on card 4111 1111 1111 1111?"


@pytest.mark.parametrize(("model", "error", "status"), [("leaky", RetryableStepError, "500"),
                                                        ("leaky-400", FatalStepError, "400")])
def test_error_bodies_echoing_the_prompt_stay_out_of_the_message(
    fake_llm: Any, model: str, error: type[Exception], status: str
) -> None:
    provider = OpenAIProvider(fake_llm.base_url, model)

    async def go() -> Any:
        try:
            return await provider.generate(GenerationRequest(question=PII_QUESTION, passages=PASSAGES))
        finally:
            await provider.close()

    with pytest.raises(error) as caught:
        asyncio.run(go())
    message = str(caught.value)
    assert status in message and fake_llm.base_url in message and "type=invalid_request_error" in message
    assert "jane.doe" not in message and "example.com" not in message
    assert "4111" not in message and "charged" not in message and "Invalid prompt" not in message


def test_error_summary_keeps_only_identifier_fields() -> None:
    assert error_summary('{"error": {"type": "server_error", "code": 503, "message": "x@y.z"}}') == "type=server_error, code=503"
    assert error_summary('{"error": {"code": "4111111111111111", "type": "a b@c.d"}}') == ""
    assert error_summary("upstream failed for jane@example.com") == ""
    assert error_summary('{"error": "overloaded"}') == "" and error_summary("[1, 2]") == ""


def test_retry_after_parsing() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("1") == 1.0 and parse_retry_after(" 2.5 ") == 2.5
    assert parse_retry_after(formatdate(now + 10, usegmt=True), now=now) == pytest.approx(10.0)
    assert parse_retry_after(formatdate(now - 10, usegmt=True), now=now) == 0.0
    assert parse_retry_after("86400") == 300.0  # capped
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None and parse_retry_after("nan") is None


def test_429_retry_after_is_on_the_error_and_waited_out(fake_llm: Any) -> None:
    provider = OpenAIProvider(fake_llm.base_url, "ratelimited")
    request = GenerationRequest(question="How do I reverse a list?", passages=PASSAGES)
    waits: list[float] = []

    async def recorded_sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(seconds)

    async def go() -> Any:
        try:
            with pytest.raises(RetryableStepError, match="429") as caught:
                await provider.generate(request)  # limited: the next call must wait 1 s
            assert caught.value.retry_after_s == 1.0 and "rate_limit_exceeded" in str(caught.value)
            await asyncio.sleep(1.0)
            first = await provider.generate(request)  # waited it out: answered, and limited again
            # under the policy: 429 now, then a retry that the server accepts only after its second
            outcome = await run_with_policy(lambda: provider.generate(request), Policy(retries=1, backoff_s=0.2),
                                            sleep=recorded_sleep)
            return first, outcome
        finally:
            await provider.close()

    first, outcome = asyncio.run(go())
    assert first.model == "ratelimited"
    assert (outcome.status, outcome.attempts) == ("ok", 2), outcome.error_text
    assert outcome.value.text.endswith("[1].") and waits == [1.0]


def test_ignoring_retry_after_gets_another_429(fake_llm: Any) -> None:
    """The server really holds the limit: a retry after the 0.2 s backoff alone is refused again."""
    provider = OpenAIProvider(fake_llm.base_url, "ratelimited")
    request = GenerationRequest(question="How do I reverse a list?", passages=PASSAGES)

    async def go() -> Any:
        try:
            with contextlib.suppress(RetryableStepError):
                await provider.generate(request)
            await asyncio.sleep(0.2)
            with pytest.raises(RetryableStepError, match="429"):
                await provider.generate(request)
            await asyncio.sleep(1.0)
            return await provider.generate(request)
        finally:
            await provider.close()

    assert asyncio.run(go()).model == "ratelimited"


# The offline extractive generator: answers that name the API, code rendered as code, few embeddings.

JSON_PASSAGE = """.. function:: json.loads(s, *, cls=None, object_hook=None, parse_float=None, parse_int=None, parse_constant=None, object_pairs_hook=None, **kw)

   Deserialize *s* (a :class:`str`, :class:`bytes` or :class:`bytearray`
   instance containing a JSON document) to a Python object using this
   :ref:`conversion table <json-to-py-table>`.

   If the data being deserialized is not a valid JSON document, a
   :exc:`JSONDecodeError` will be raised.

   Decoding JSON::

       >>> json.loads('["foo", {"bar":["baz", null, 1.0, 2]}]')
       ['foo', {'bar': ['baz', None, 1.0, 2]}]

.. function:: json.dumps(obj, *, skipkeys=False, ensure_ascii=True)

   Serialize *obj* to a JSON formatted :class:`str` using this conversion table.
"""


def test_markup_keeps_signatures_as_facts_and_code_out_of_prose() -> None:
    from steps.markup import clean_markup, parse

    parsed = parse(JSON_PASSAGE)
    assert [f.name for f in parsed.facts] == ["json.loads", "json.dumps"]
    assert [b.owner for b in parsed.blocks][:2] == ["json.loads", "json.loads"]
    assert [c.line for c in parsed.code] == ["json.loads('[\"foo\", {\"bar\":[\"baz\", null, 1.0, 2]}]')"]
    prose = clean_markup(JSON_PASSAGE)
    assert "Deserialize s (a str, bytes or bytearray" in prose
    assert ">>>" not in prose and "['foo'" not in prose and "::" not in prose


def test_code_block_directives_are_code_and_notes_are_prose() -> None:
    from steps.markup import parse

    parsed = parse(".. note::\n\n   Keys are always strings.\n\n.. code-block:: python\n\n   data = json.load(f)\n   print(data)\n")
    assert [b.text for b in parsed.blocks] == ["Keys are always strings."]
    assert [c.line for c in parsed.code] == ["data = json.load(f)", "print(data)"]


def extractive(**kw: Any) -> Any:
    from steps.embedding import AsyncEmbedder, MiniLMEmbedder
    from steps.providers import ExtractiveProvider

    return ExtractiveProvider(AsyncEmbedder(MiniLMEmbedder()), **kw)


def test_extractive_answer_leads_with_the_api_and_renders_code_as_code() -> None:
    provider = extractive()
    passages = [{"source": "library/json.html", "title": "Basic Usage", "text": JSON_PASSAGE, "score": 0.7}]
    out = asyncio.run(provider.generate(GenerationRequest(question="how do i parse a json string into a dict", passages=passages)))
    assert out.text.startswith("`json.loads(s, *, cls=None"), out.text
    assert out.text.split("\n\n")[0].endswith("[1].")
    assert "\n\n```python\njson.loads('[\"foo\"" in out.text and out.text.endswith("```")
    assert out.passages == passages


def test_extractive_embeds_only_a_shortlist_of_sentences() -> None:
    from steps.embedding import AsyncEmbedder, MiniLMEmbedder
    from steps.providers import ExtractiveProvider

    real = MiniLMEmbedder()
    sizes: list[int] = []

    class Counting:
        model_id, dim = real.model_id, real.dim

        def embed(self, texts: list[str]) -> Any:
            sizes.append(len(texts))
            return real.embed(texts)

    provider = ExtractiveProvider(AsyncEmbedder(Counting()), rerank=4)
    text = " ".join(f"Sentence number {i} talks about topic {i} in some detail here." for i in range(40))
    passages = [{"source": "a.html", "title": "A", "text": text, "score": 0.5}]
    asyncio.run(provider.generate(GenerationRequest(question="what about topic 7?", passages=passages)))
    assert sizes == [1, 4]  # the question, then 4 of the 40 sentences


def test_extractive_does_not_know_when_passages_are_unrelated() -> None:
    provider = extractive()
    passages = [{"source": "library/json.html", "title": "Basic Usage", "text": JSON_PASSAGE, "score": 0.2}]
    out = asyncio.run(provider.generate(GenerationRequest(question="What is the capital of France?", passages=passages)))
    assert out.text.startswith("I don't know") and out.passages == []


def test_extractive_leads_with_the_api_converting_in_the_asked_direction() -> None:
    provider = extractive()
    passages = [{"source": "library/json.html", "title": "Basic Usage", "text": JSON_PASSAGE, "score": 0.7}]
    out = asyncio.run(provider.generate(GenerationRequest(question="turn a python object into json text", passages=passages)))
    assert out.text.startswith("`json.dumps("), out.text


def test_api_names_match_abbreviations_and_word_parts_more_than_qualifiers() -> None:
    from steps.answer import _abbreviates, _conversion, _direction, _fact_match, tokens
    from steps.markup import ApiFact

    def match(question: str, name: str) -> float:
        return _fact_match(set(tokens(question)), question, ApiFact("function", name, name + "()"))

    assert _abbreviates("pprint", ["pretty", "print", "a", "dict"]) and _abbreviates("getcwd", ["get", "current", "working", "dir"])
    assert not _abbreviates("pp", ["pretty", "print"]) and not _abbreviates("print", ["print", "it"])
    assert match("pretty print nested dict", "pprint.pprint") > match("pretty print nested dict", "pprint.pp")
    assert match("precompile a regex pattern", "re.compile") > match("precompile a regex pattern", "re.Pattern.flags") > 0
    assert match("sort a list", "list.sort") > max(match("sort a list", "sorted"), match("sort a list", "list"))
    source, target = _conversion("convert python object into json text")
    assert _direction("Serialize obj to a JSON formatted str.", source, target) == 1.0
    assert _direction("Deserialize fp to a Python object.", source, target) == -1.0
    assert _conversion("how do i sort a list") == (set(), set())
