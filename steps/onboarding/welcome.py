"""The welcome message for an accepted applicant: a template in the applicant's language, or a chat model's.

With ``use_llm: true`` (node config) the configured OpenAI-compatible model writes it, and only the
applicant's first given name, country and product go into the prompt (no date of birth, no
document number); tokens and cost are booked with ``ctx.record_usage``. Without a model configured
that node fails with :class:`~steps.providers.LLMNotConfiguredError`, which names the settings.
The name the message greets is a PII field, so stored copies of the message are masked.
"""

from __future__ import annotations

import time
from typing import Any

from steps.base import StepContext, StepModel
from steps.generation import cost_usd
from steps.onboarding.applicant import COUNTRIES
from steps.pii import pii_field
from steps.registry import step

__all__ = ["GREETINGS", "Welcome", "WelcomeInput", "WelcomeOutput", "template_message"]

GREETINGS = {"DEU": "Willkommen", "AUT": "Willkommen", "FRA": "Bienvenue", "BEL": "Bienvenue", "ESP": "Bienvenido",
             "ITA": "Benvenuto", "NLD": "Welkom", "PRT": "Bem-vindo", "POL": "Witamy", "SWE": "Välkommen",
             "NOR": "Velkommen", "DNK": "Velkommen", "FIN": "Tervetuloa"}


class WelcomeInput(StepModel):
    given_names: str
    nationality: str = ""
    approval: dict[str, Any] | None = None  # set when a person approved the application


class WelcomeOutput(StepModel):
    answer: str
    greeting_name: str = pii_field(description="the name the message greets")


def _first_name(given_names: str) -> str:
    first = given_names.split()[0] if given_names.split() else ""
    return first.capitalize()


def template_message(given_names: str, nationality: str, product: str, reviewed: bool) -> str:
    greeting = GREETINGS.get(nationality, "Welcome")
    name = _first_name(given_names)
    reviewed_note = " A member of our team reviewed your application and approved it." if reviewed else ""
    return (f"{greeting}, {name}! Your {product} account is open.{reviewed_note} Your identity document has been "
            "verified; you can sign in now and set up your first payment.")


@step("onboarding-welcome")
class Welcome:
    """Writes the welcome message (template by default; ``use_llm: true`` asks the configured chat model)."""

    def __init__(self, product: str = "Conveyor Bank", use_llm: bool = False, max_tokens: int = 200) -> None:
        self.product = product
        self.use_llm = use_llm
        self.max_tokens = max_tokens
        self.deps: Any = None

    async def warm_up(self, deps: Any) -> None:
        self.deps = deps

    async def run(self, input: WelcomeInput, ctx: StepContext) -> WelcomeOutput:
        reviewed = bool(input.approval) and (input.approval or {}).get("decision") == "approved"
        name = _first_name(input.given_names)
        if not self.use_llm:
            return WelcomeOutput(answer=template_message(input.given_names, input.nationality, self.product, reviewed),
                                 greeting_name=name)
        chat = self.deps.chat("the onboarding welcome step (use_llm: true)")
        country = COUNTRIES.get(input.nationality, input.nationality).title()
        messages = [
            {"role": "system", "content": f"You write short, warm welcome messages for new {self.product} customers. "
                                          "Two sentences, in the customer's language, no promises about money."},
            {"role": "user", "content": f"Customer's first name: {name}. Country: {country}. "
                                        f"{'A person reviewed and approved the application. ' if reviewed else ''}"
                                        "Write the welcome message."},
        ]
        started = time.time()
        reply = await chat.chat(messages, model=ctx.model, max_tokens=self.max_tokens)
        cost = cost_usd(self.deps.prices, reply.model, reply.input_tokens, reply.output_tokens)
        ctx.record_usage(reply.model, reply.input_tokens, reply.output_tokens, cost)
        ctx.record_span("welcome-llm", started, time.time(), kind="llm", model=reply.model)
        text = reply.content.strip() or template_message(input.given_names, input.nationality, self.product, reviewed)
        return WelcomeOutput(answer=text, greeting_name=name)
