"""The support pipeline in-process on the real models: intent in four languages decides the route and the reply."""

from __future__ import annotations

from typing import Any

from streams.testing import run_pipeline


def test_meta_questions_smalltalk_and_abuse_in_four_languages(warm: dict[str, Any]) -> None:
    requests = [
        {"id": "maker", "text": "who made you?"},
        {"id": "abilities-fr", "text": "Qu'est-ce que tu sais faire ?"},
        {"id": "bot-de", "text": "Bist du ein Bot?"},
        {"id": "thanks-es", "text": "¡Muchas gracias!"},
        {"id": "abuse-de", "text": "Halt die Klappe, du nutzloser Bot"},
        {"id": "abuse-es", "text": "eres un inútil"},
        {"id": "question-es", "text": "¿Cómo ordeno una lista de forma descendente?"},
    ]
    outcome = run_pipeline("support", requests, deps=warm["deps"], build_step=lambda ref, config: warm[ref])
    by_id = {r.id: r for r in outcome.results}
    smalltalk = ("maker", "abilities-fr", "bot-de", "thanks-es")
    for rid in smalltalk:
        result = by_id[rid]
        assert result.status == "ok", (rid, result.status, result.safety)
        assert result.route == ["classification", "generation", "safety"] and result.intent == "smalltalk"
        assert not result.citations
    assert "Conveyor" in (by_id["maker"].answer or "")
    assert (by_id["abilities-fr"].answer or "").startswith("Je réponds")
    assert (by_id["bot-de"].answer or "").startswith("Ich bin ein Bot")
    assert (by_id["thanks-es"].answer or "").startswith("¡De nada!")
    for rid in ("abuse-de", "abuse-es"):
        assert by_id[rid].status == "rejected" and by_id[rid].route == ["classification"]
    question = by_id["question-es"]
    assert question.route == ["classification", "retrieval", "generation", "safety"]
    assert question.intent in ("howto", "explain")
