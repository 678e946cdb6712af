"""Replies to smalltalk (greetings, thanks, questions about the assistant itself): no retrieval, no model."""

from __future__ import annotations

import re

__all__ = ["smalltalk_reply"]

_SMALLTALK_REPLIES = (
    (re.compile(r"\b(thank|thanks|thx|cheers|appreciate)", re.I), "You're welcome! Ask me anything else about Python."),
    (re.compile(r"\b(bye|goodbye|see you|good night)\b", re.I), "Goodbye! Come back with any Python question."),
    (
        re.compile(r"\b(who|what) are you\b|\byour name\b|\bwhat can you do\b|\brobot\b", re.I),
        "I'm Conveyor's offline assistant: I answer Python questions from the Python documentation, with citations.",
    ),
    (re.compile(r"\b(hi|hello|hey|howdy|good (morning|afternoon|evening))\b", re.I),
     "Hello! I answer questions about Python from its documentation. What would you like to know?"),
)


def smalltalk_reply(text: str) -> str:
    for pattern, reply in _SMALLTALK_REPLIES:
        if pattern.search(text):
            return reply
    return "I'm here for Python questions: ask how to do something, what a feature means, or paste an error."
