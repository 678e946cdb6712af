"""Smalltalk replies: questions about the assistant get a real description, in the user's language."""

from __future__ import annotations

import pytest

from steps.smalltalk import detect_language, meta_topic, smalltalk_reply


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Hello there", "en"),
        ("who made you", "en"),
        ("Bonjour, qui es-tu ?", "fr"),
        ("merci beaucoup", "fr"),
        ("Wer hat dich programmiert?", "de"),
        ("Danke schön", "de"),
        ("¿Quién te creó?", "es"),
        ("muchas gracias", "es"),
    ],
)
def test_detect_language(text: str, lang: str) -> None:
    assert detect_language(text) == lang


@pytest.mark.parametrize(
    ("text", "topic"),
    [
        ("who made you?", "maker"),
        ("Who built this bot", "maker"),
        ("qui t'a créé", "maker"),
        ("Wer hat dich entwickelt?", "maker"),
        ("¿quién te hizo?", "maker"),
        ("what can you do?", "abilities"),
        ("what can u help me with", "abilities"),
        ("Qu'est-ce que tu sais faire ?", "abilities"),
        ("Was kannst du alles?", "abilities"),
        ("¿Qué puedes hacer?", "abilities"),
        ("are you a bot?", "nature"),
        ("am I talking to a human", "nature"),
        ("tu es un robot ?", "nature"),
        ("Bist du ein Mensch?", "nature"),
        ("¿eres una persona real?", "nature"),
        ("who are you", "identity"),
        ("Wie heißt du?", "identity"),
        ("who created Python?", None),
        ("what can you do with functools.partial", None),
        ("is this a bot framework for Telegram?", None),
    ],
)
def test_meta_topic(text: str, topic: str | None) -> None:
    assert meta_topic(text) == topic


def test_who_made_you_is_answered_helpfully() -> None:
    reply = smalltalk_reply("who made you?")
    assert "Conveyor" in reply and "Python" in reply


def test_what_can_you_do_describes_the_abilities() -> None:
    reply = smalltalk_reply("what can you do?")
    assert "documentation" in reply and "error" in reply


def test_are_you_a_bot_says_yes() -> None:
    assert smalltalk_reply("are you a bot?").startswith("I'm a bot")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Qui t'a créé ?", "J'ai été construit"),
        ("Qu'est-ce que tu sais faire ?", "Je réponds"),
        ("Wer hat dich programmiert?", "Ich wurde"),
        ("Bist du ein Bot?", "Ich bin ein Bot"),
        ("¿Quién te creó?", "Me construyeron"),
        ("¿Eres un bot?", "Soy un bot"),
        ("Bonjour !", "Bonjour !"),
        ("Danke!", "Gern geschehen"),
        ("¡Hola!", "¡Hola!"),
        ("adiós", "¡Adiós!"),
        ("Hello!", "Hello!"),
        ("thanks a lot", "You're welcome"),
    ],
)
def test_replies_in_the_users_language(text: str, expected: str) -> None:
    assert smalltalk_reply(text).startswith(expected)
