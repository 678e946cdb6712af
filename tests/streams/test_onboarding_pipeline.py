"""The bundled ``onboarding`` pipeline in-process: clean → welcome, declined → rejected, risky → a person decides.

Passports are rendered by the test (steps.onboarding.samples) and read by the real Tesseract; the
fraud model trains once into a temporary cache. PII (name, birth date, document number, the image)
must not reach spans, dead letters or logs.
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any

import orjson
import pytest

import steps.onboarding  # noqa: F401 - registers the onboarding steps
from steps.base import FatalStepError, StepContext, StepModel
from steps.onboarding.samples import sample, sample_png
from steps.registry import step
from streams.testing import Run, run_pipeline

PIPELINE = Path(__file__).resolve().parents[2] / "streams" / "pipelines" / "onboarding.yaml"


@pytest.fixture(autouse=True)
def fraud_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fraud model's cache in a temporary home (trained once per module, ~0.5 s)."""
    home = tmp_path_factory.getbasetemp() / "onboarding-home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))


def request(kind: str, rid: str | None = None, **metadata: Any) -> dict[str, Any]:
    data = base64.b64encode(sample_png(kind)).decode("ascii")
    return {"id": rid or kind, "text": f"onboard {kind}", "tenant": "fintech",
            "metadata": {"document_base64": data, **metadata}}


def secrets(kind: str) -> list[str]:
    applicant, _ = sample(kind)
    return [applicant.surname, applicant.document_number, applicant.date_of_birth.isoformat(),
            applicant.given_names.split()[0]]


def assert_no_pii(run: Run, kinds: list[str], logs: str) -> None:
    stored = orjson.dumps(run.spans).decode() + orjson.dumps([d.model_dump() for d in run.dead_letters]).decode() + logs
    for kind in kinds:
        for secret in secrets(kind):
            assert secret.upper() not in stored.upper(), f"{kind}: {secret} leaked"


def test_clean_applicant_passes_without_approval_and_is_welcomed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    run = run_pipeline(PIPELINE, [request("clean")])
    [result] = run.results
    assert result.status == "ok", result.error
    assert result.route == ["ocr", "extract", "fraud", "decide", "welcome"]
    assert result.answer is not None and "Elena" in result.answer and "account is open" in result.answer
    assert result.output["decision"] == "approve" and result.output["risk_score"] < 0.5
    assert run.pending == []
    assert {s["step"] for s in run.spans} >= {"ocr/tesseract", "fraud/fraud-model"}
    assert_no_pii(run, ["clean"], caplog.text)


@pytest.mark.parametrize("kind, rule", [("sanctioned", "sanctions"), ("expired", "document-valid")])
def test_declined_applicants_are_rejected_with_the_rule(kind: str, rule: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    run = run_pipeline(PIPELINE, [request(kind)])
    [result] = run.results
    assert result.status == "rejected" and result.route[-1] == "decide"
    assert result.output["decision"] == "decline" and f"{rule}:" in result.output["reasons"]
    assert result.answer is None and run.dead_letters == []
    assert_no_pii(run, [kind], caplog.text)


def test_risky_applicant_waits_for_a_person_then_is_welcomed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    run = run_pipeline(PIPELINE, [request("risky", "r-risky")],
                       approvals={"r-risky": {"decision": "approve", "by": "alice", "comment": "called her"}})
    [notice] = run.pending
    assert notice.status == "pending_approval" and notice.route[-1] == "review (waiting)"
    assert "risk 0." in notice.output["approval"]["summary"] and "fraud-risk" in notice.output["approval"]["summary"]
    [result] = run.results
    assert result.status == "ok", result.error
    assert result.route[-2:] == ["review (approved by alice)", "welcome"]
    assert result.output["decision"] == "review" and result.output["approval"]["by"] == "alice"
    assert "printed fields disagree with the MRZ (2)" in result.output["risk_factors"]
    assert result.answer is not None and "reviewed your application" in result.answer
    assert_no_pii(run, ["risky"], caplog.text)


def test_risky_applicant_rejected_by_a_person() -> None:
    run = run_pipeline(PIPELINE, [request("risky", "r-no")], approvals={"r-no": "reject"})
    [result] = run.results
    assert result.status == "rejected" and result.output["approval"]["decision"] == "rejected"


def test_risky_applicant_nobody_answers_expires_to_the_declared_default() -> None:
    run = run_pipeline(PIPELINE, [request("risky", "r-late")])
    [result] = run.results
    assert len(run.pending) == 1
    assert result.status == "rejected" and result.answer is None
    assert result.output["approval"]["decision"] == "expired" and result.output["approval"]["default"] == "rejected"


def test_a_request_without_an_image_is_rejected_naming_the_key() -> None:
    run = run_pipeline(PIPELINE, [{"id": "bare", "text": "onboard me"}])
    [result] = run.results
    assert result.status == "rejected" and "metadata.document_path" in (result.error or "")
    assert run.dead_letters == []


class Anything(StepModel):
    text: str = ""


@step("onboarding-test-explode")
async def explode(input: Anything, ctx: StepContext) -> Anything:
    raise FatalStepError("the downstream service refused")


def test_a_step_failing_after_extraction_leaves_no_pii_in_the_dead_letter(tmp_path: Path) -> None:
    broken = tmp_path / "onboarding-broken.yaml"
    broken.write_text(
        "name: onboarding-broken\nentry: ocr\nnodes:\n"
        "  - {name: ocr, step: onboarding-ocr, next: extract}\n"
        "  - {name: extract, step: onboarding-extract, next: explode}\n"
        "  - {name: explode, step: onboarding-test-explode}\n"
    )
    run = run_pipeline(broken, [request("clean", "r-dlq")])
    [result] = run.results
    assert result.status == "failed"
    [letter] = run.dead_letters
    assert letter.step == "explode" and "field" in letter.redacted and not letter.truncated
    for secret in secrets("clean"):
        assert secret not in letter.value
    state = orjson.loads(letter.value)["state"]
    assert state["surname"] == "[SURNAME]" and state["nationality"] == "SWE"
    assert orjson.loads(letter.value)["request"]["metadata"]["document_base64"] == "[DOCUMENT_BASE64]"
