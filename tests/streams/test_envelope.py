from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.envelope import DeadLetter, Envelope, Request, Result, decode, encode
from streams.errors import EnvelopeDecodeError

texts = st.text(min_size=1, max_size=200)
ids = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=30)


@given(text=texts, rid=ids, tenant=ids, session=st.none() | ids, deadline=st.none() | st.integers(1, 10**6))
def test_request_round_trip(text: str, rid: str, tenant: str, session: str | None, deadline: int | None) -> None:
    r = Request(id=rid, text=text, tenant=tenant, session=session, deadline_ms=deadline)
    assert decode(encode(r), Request) == r


@given(text=texts, state=st.dictionaries(st.text(max_size=10), st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20), max_size=5))
def test_envelope_round_trip(text: str, state: dict) -> None:
    env = Envelope(request=Request(id="r-1", text=text), trace_id="t", published_at=1.5, route=["a"], state=state)
    assert decode(encode(env), Envelope) == env


def test_only_text_is_required_and_unknown_fields_go_to_metadata() -> None:
    r = decode(orjson.dumps({"text": "hi", "channel": "email", "metadata": {"a": 1}}), Request)
    assert r.id is None and r.tenant == "default" and r.pipeline == "support"
    assert r.metadata == {"channel": "email", "a": 1}


def test_session_key() -> None:
    assert Request(id="r-1", text="x", tenant="acme", session="s-9").session_key() == "acme/s-9"
    assert Request(id="r-1", text="x").session_key() == "default/#r-1"


def test_keys_of_different_tenants_never_collide() -> None:
    """tenant acme + session team/s9 and tenant acme/team + session s9 used to share ``acme/team/s9``."""
    a = Request(id="r-1", text="x", tenant="acme", session="team/s9")
    b = Request(id="r-1", text="x", tenant="acme/team", session="s9")
    assert a.session_key() != b.session_key()
    assert (a.session_key(), b.session_key()) == ("acme/team%2Fs9", "acme%2Fteam/s9")
    # a session named like another request's id-key cannot collide either
    c = Request(id="s9", text="x", tenant="acme")
    d = Request(id="r-2", text="x", tenant="acme", session="#s9")
    assert c.session_key() != d.session_key()
    # the same id from two tenants is two requests
    e, f = Request(id="r-1", text="x", tenant="t1"), Request(id="r-1", text="x", tenant="t2")
    assert e.request_key() != f.request_key()
    g, h = Request(id="b/r-1", text="x", tenant="a"), Request(id="r-1", text="x", tenant="a/b")
    assert g.request_key() != h.request_key()


@pytest.mark.parametrize(
    ("raw", "reason", "request_id"),
    [
        (b"\xff\xfe not json", "not valid JSON", None),
        (b"[1, 2]", "expected a JSON object, got list", None),
        (b'{"id": "r-7"}', "text: Field required", "r-7"),
        (b'{"id": "r-8", "text": 42}', "text: Input should be a valid string", "r-8"),
        (b'{"text": "x", "deadline_ms": "soon"}', "deadline_ms", None),
        (b'{"id": "r-9", "text": ""}', "text: String should have at least 1 character", "r-9"),
    ],
)
def test_decode_errors_say_what_is_wrong(raw: bytes, reason: str, request_id: str | None) -> None:
    with pytest.raises(EnvelopeDecodeError, match=reason) as info:
        decode(raw, Request)
    assert info.value.request_id == request_id


def test_dead_letter_keeps_non_utf8_bytes_as_base64() -> None:
    assert DeadLetter.text_of(b"\xff\x00") == ("/wA=", "base64")
    assert DeadLetter.text_of("héllo".encode()) == ("héllo", "utf-8")


def test_result_matches_design_example() -> None:
    example = {
        "id": "r-123", "status": "ok", "answer": "...", "citations": [{"source": "s", "title": "t", "score": 0.71}],
        "route": ["classification", "retrieval", "generation", "safety"], "intent": "howto",
        "usage": {"input_tokens": 412, "output_tokens": 96, "cost_usd": 0.00031}, "latency_ms": 184.2,
        "trace_id": "x", "safety": {"verdict": "allow", "flags": []}, "error": None, "output": {},
    }
    # DESIGN.md §2's example, plus ``tenant``: with ``id`` it names the request (ids are per tenant)
    assert orjson.loads(encode(Result.model_validate(example))) == {**example, "tenant": None}
