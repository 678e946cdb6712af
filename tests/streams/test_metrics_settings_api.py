from __future__ import annotations

import re
from typing import Any

import pytest

import steps
import streams
from steps.base import RetryableStepError
from streams.app import Settings
from streams.metrics import Metrics

DESIGN_METRICS = {
    "conveyor_step_messages_total", "conveyor_step_processing_seconds", "conveyor_step_queue_seconds",
    "conveyor_step_inflight", "conveyor_step_retries_total", "conveyor_dlq_messages_total",
    "conveyor_request_latency_seconds", "conveyor_tokens_total", "conveyor_cost_usd_total", "conveyor_consumer_lag",
    "conveyor_circuit_state", "conveyor_provider_fallbacks_total",
}


def test_every_design_metric_is_exported() -> None:
    m = Metrics()
    m.declare("support", "generation")
    m.record_usage("support", "generation", "acme", "gpt-4o-mini", 10, 2, 0.001)
    m.dlq.labels("support", "generation", "KeyError").inc()
    m.request_latency.labels("support", "ok").observe(0.2)
    m.lag.labels("conveyor.support.generation", "0").set(3)
    m.declare_provider("openai:gpt-4o-mini")
    text = m.exposition().decode()
    names = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    counters = {f"{n}_total" for n in names if f"# TYPE {n} counter" in text}
    assert DESIGN_METRICS <= names | counters
    assert 'conveyor_cost_usd_total{model="gpt-4o-mini",pipeline="support",step="generation",tenant="acme"} 0.001' in text


def test_tenant_label_is_bounded() -> None:
    m = Metrics()
    labels = {m.tenant_label(f"t{i}") for i in range(500)}
    assert len(labels) == 101 and "other" in labels


def test_settings_from_env_and_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_BROKER", "kafka.internal:9093")
    monkeypatch.setenv("CONVEYOR_STEPS", "generation, safety")
    monkeypatch.setenv("CONVEYOR_CONCURRENCY", '{"generation": 64}')
    s = Settings()
    assert s.bootstrap_servers() == ["kafka.internal:9093"]
    assert s.steps == ("generation", "safety") and s.concurrency_for("generation") == 64
    assert Settings(broker="other:1").broker == "other:1"  # flags win over the environment
    with pytest.raises(ValueError, match="HOST:PORT"):
        Settings(broker="no-port")


@pytest.mark.parametrize("module", [streams, steps])
def test_public_api_is_exactly_all(module: object) -> None:
    public = {n for n in dir(module) if not n.startswith("_")}
    exported = set(module.__all__)  # type: ignore[attr-defined]
    assert exported <= public
    submodules = {n for n in public if type(getattr(module, n)).__name__ == "module"}
    assert public - submodules == exported


def test_the_step_api_is_exported_from_streams() -> None:
    from steps.base import FatalStepError, RetryableStepError, StepContext
    from steps.registry import step, tool

    assert {"step", "tool", "StepContext", "RetryableStepError", "FatalStepError"} <= set(streams.__all__)
    assert (streams.step, streams.tool, streams.StepContext) == (step, tool, StepContext)
    assert (streams.RetryableStepError, streams.FatalStepError) == (RetryableStepError, FatalStepError)


def test_histogram_p50_matches_the_observations() -> None:
    from streams.report import histogram_p50

    a, b = Metrics(), Metrics()
    for m, values in ((a, [0.003] * 5), (b, [0.3] * 4 + [0.003])):
        for v in values:
            m.processing.labels("support", "generation").observe(v)
    p50 = histogram_p50([a.exposition().decode(), b.exposition().decode()], "conveyor_step_processing_seconds")
    assert 0.0025 <= p50["generation"] <= 0.005  # 6 of 10 observations are 3 ms


def test_request_budget_and_llm_resilience_defaults_reach_the_resources(monkeypatch: pytest.MonkeyPatch) -> None:
    from streams.worker import resource_config

    for name in ("DEFAULT_DEADLINE_MS", "LLM_TIMEOUT_S", "LLM_FALLBACK", "LLM_MAX_CONCURRENCY"):
        monkeypatch.delenv(f"CONVEYOR_{name}", raising=False)
    s = Settings()
    assert (s.default_deadline_ms, s.llm_timeout_s) == (60_000, 20.0)
    config = resource_config(s)
    assert (config.llm_timeout_s, config.llm_breaker_failures, config.llm_breaker_reset_s, config.llm_max_concurrency,
            config.llm_bulkhead_wait_s, config.llm_fallback) == (20.0, 5, 30.0, 16, 2.0, "none")
    monkeypatch.setenv("CONVEYOR_DEFAULT_DEADLINE_MS", "5000")
    monkeypatch.setenv("CONVEYOR_LLM_FALLBACK", "extractive")
    monkeypatch.setenv("CONVEYOR_LLM_MAX_CONCURRENCY", "4")
    s = Settings()
    assert (s.default_deadline_ms, resource_config(s).llm_fallback, resource_config(s).llm_max_concurrency) == (
        5000, "extractive", 4)
    with pytest.raises(ValueError, match="llm_fallback"):
        Settings(llm_fallback="gpt-5")


def test_circuit_state_and_fallbacks_are_read_at_scrape_time(tmp_path: Any) -> None:
    from steps.deps import Deps, ResourceConfig
    from streams.worker import build_worker, report_providers

    _, _, server = build_worker(Settings(data_dir=tmp_path, llm_provider="openai", llm_model="m", metrics_port=0),
                                embedded=False)
    text = server.metrics.exposition().decode()  # declared at build: a dashboard sees them from start-up
    assert 'conveyor_circuit_state{provider="openai:m"} 0.0' in text
    assert 'conveyor_provider_fallbacks_total{provider="openai:m"} 0.0' in text

    m = Metrics()
    deps = Deps(ResourceConfig(index_dir=tmp_path, llm_provider="openai", llm_model="m", llm_breaker_failures=1))
    breaker = deps.breakers()["openai:m"]
    with pytest.raises(RetryableStepError), breaker.call():
        raise RetryableStepError("503")
    provider = deps.provider()
    provider.fallbacks = 3  # type: ignore[attr-defined]  # as three fallback answers would
    report_providers(deps, m)
    report_providers(deps, m)  # a second scrape adds nothing new
    text = m.exposition().decode()
    assert 'conveyor_circuit_state{provider="openai:m"} 2.0' in text
    assert 'conveyor_provider_fallbacks_total{provider="openai:m"} 3.0' in text
