"""Intent in four languages: the rules (abuse, smalltalk, questions about the assistant) and the model head."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from steps import Deps, ResourceConfig, resolve
from steps.base import StepContext
from steps.classification import Classification, ClassificationInput, ClassifierNotReadyError, is_abuse, rule_intent


@pytest.mark.parametrize(
    "text",
    [
        "you're a useless idiot",
        "f*** off",
        "ur so dumb, stupid bot",
        "sh.u.t u.p",
        "Ta gueule",
        "t'es trop nul",
        "Sale machine de merde",
        "Halt die Klappe",
        "Du bist so blöd",
        "Scheiß Programm",
        "Eres una basura",
        "vete al diablo, idiota",
        "Bot de mierda, no sirves",
    ],
)
def test_abuse_in_four_languages(text: str) -> None:
    assert is_abuse(text)
    assert rule_intent(text) == "abuse"


@pytest.mark.parametrize(
    "text",
    [
        "How do I kill a process by its pid?",
        "sorry if this is a stupid question, how do I sort a dict?",
        "I'm such an idiot, I forgot the colon. What does SyntaxError mean?",
        "how does garbage collection work",
        "cómo leer un csv con pandas",
        "Was ist eine dumme Variable?",
        "comment supprimer les valeurs nulles d'une liste",
        "shutil.rmtree fails on Windows",
        "how do I make this DeprecationWarning go away",
        "my changes get lost after the commit",
    ],
)
def test_programming_questions_are_not_abuse(text: str) -> None:
    assert not is_abuse(text)


@pytest.mark.parametrize(
    "text",
    [
        "hello!!",
        "Thanks so much :)",
        "Bonsoir à tous",
        "merci bien",
        "Moin!",
        "Vielen Dank!",
        "Buenos días",
        "gracias, muy amable",
        "wie geht's?",
        "¿qué tal?",
    ],
)
def test_greetings_and_thanks_in_four_languages(text: str) -> None:
    assert rule_intent(text) == "smalltalk"


@pytest.mark.parametrize(
    "text",
    [
        "hi, how do I open a file?",
        "thanks! now how do I write it back?",
        "great, now sort it descending",
        "salut, comment lire un fichier ?",
        "Hallo, wie sortiere ich eine Liste?",
        "hola, cómo convierto un string a int",
        "who created Python?",
        "what can you do with a defaultdict",
    ],
)
def test_a_greeting_or_a_you_does_not_hide_a_question(text: str) -> None:
    assert rule_intent(text) is None


@pytest.fixture(scope="module")
def classification(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The classification step alone, warmed on the real embedder (no corpus or index needed)."""
    deps = Deps(ResourceConfig(index_dir=Path(tmp_path_factory.mktemp("index"))))
    runner = resolve("classification").build({})
    asyncio.run(runner.warm_up(deps))
    return runner


def _classify(runner: Any, text: str) -> Any:
    return asyncio.run(runner.run(runner.Input(text=text), StepContext(request_id="r-test")))


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("Comment convertir une liste en ensemble ?", "howto"),
        ("wie kann ich eine Zahl runden", "howto"),
        ("¿Cómo puedo unir dos listas?", "howto"),
        ("Qu'est-ce qu'un dictionnaire ?", "explain"),
        ("Was ist ein Modul?", "explain"),
        ("¿Qué es un generador?", "explain"),
        ("J'ai une erreur AttributeError: 'list' object has no attribute 'split'", "error"),
        ("Ich bekomme NameError: name 'x' is not defined", "error"),
        ("me sale TypeError: unhashable type: 'list'", "error"),
    ],
)
def test_questions_in_other_languages_stay_questions(classification: Any, text: str, intent: str) -> None:
    out = _classify(classification, text)
    assert (out.route, out.method) == ("question", "model")
    assert out.intent == intent, f"{text!r}: {out.intent} ({out.confidence})"


@pytest.mark.parametrize(
    "text", ["who made you?", "what can you do?", "are you a bot?", "Qui t'a créé ?", "Was kannst du?", "¿Quién eres?"]
)
def test_questions_about_the_assistant_route_as_smalltalk(classification: Any, text: str) -> None:
    out = _classify(classification, text)
    assert (out.intent, out.route, out.method) == ("smalltalk", "smalltalk", "rules")


def test_abuse_is_routed_to_rejection(classification: Any) -> None:
    out = _classify(classification, "Verpiss dich, du nutzloser Bot")
    assert (out.intent, out.route) == ("abuse", "abuse")


def test_run_before_warm_up_says_what_to_do() -> None:
    step = Classification()
    text = "how do I sort a list of tuples by the second item"  # not settled by the rules: needs the model
    with pytest.raises(ClassifierNotReadyError, match="warm_up"):
        asyncio.run(step.run(ClassificationInput(text=text), StepContext(request_id="r")))


def test_rules_finish_on_long_pasted_text() -> None:
    # no timing asserted (a test never fails on wall-clock time): a regex that backtracks catastrophically
    # would not finish at all on these, and the run would hang here
    traceback = "Traceback (most recent call last):\n" + '  File "app.py", line 3, in f\n' * 400 + "ValueError: x"
    for text in (traceback, "hi " * 3000 + "how do I sort?", "a.b." * 5000, "id1ot" * 2000):
        rule_intent(text)
    assert rule_intent("hi " * 3000) is None  # too long to be smalltalk: left to the model


def test_fast_scoring_matches_scikit_learn(classification: Any) -> None:
    head = classification.instance.head
    texts = ["wie kann ich eine Liste sortieren", "what is a coroutine", "tengo KeyError", "merci, et ensuite ?",
             "a", "", "Straße   ÀÉÎ  😀 ok", "x" * 300]
    vectors = asyncio.run(classification.instance._deps.embedder.embed(texts))
    fast, reference = head.predict_proba(vectors, texts), head.predict_proba_reference(vectors, texts)
    assert fast.shape == (len(texts), 5) and np.allclose(fast, reference, atol=1e-9)
