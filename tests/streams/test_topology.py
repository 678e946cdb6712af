"""Compile graphs to Faust apps without a broker: one app per component, agents on the DESIGN topics."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.app import Settings
from streams.errors import ConfigError
from streams.pipeline_file import load_pipeline

SUPPORT = load_pipeline("support")
from streams.metrics import Metrics
from streams.topology import compile, component_names


class LocalDirectory:
    """Serves only the pipeline compiled here (the real one reads conveyor.pipelines)."""

    def entry_for(self, pipeline: str) -> str | None:
        return SUPPORT.entry if pipeline == SUPPORT.name else None

    def served(self) -> list[str]:
        return [SUPPORT.name]

    def deadline_for(self, pipeline: str) -> int | None:
        return None


LOCAL = LocalDirectory()


def settings(tmp_path: Path) -> Settings:
    return Settings(broker="127.0.0.1:1", data_dir=tmp_path)


def agent_topics(app: object) -> set[str]:
    return {t for agent in app.agents.values() for t in agent.channel.topics}  # type: ignore[attr-defined]


def test_one_app_per_component_with_its_topic(tmp_path: Path) -> None:
    compiled = compile(SUPPORT, settings(tmp_path), Metrics(), embedded=False, worker="w", directory=LOCAL)
    ids = [app.conf.id for app in compiled.apps]
    assert ids == ["conveyor-ingress", "conveyor-support-classification", "conveyor-support-retrieval",
                   "conveyor-support-generation", "conveyor-support-safety", "conveyor-ledger"]
    topics = [agent_topics(app) for app in compiled.apps]
    assert topics == [{"conveyor.requests"}, {"conveyor.support.classification"}, {"conveyor.support.retrieval"},
                      {"conveyor.support.generation"}, {"conveyor.support.safety"}, {"conveyor.ledger"}]
    assert set(compiled.tables) == {"request-state", "session-history", "cost-ledger", "ledger-seen"}
    assert list(compiled.tables["session-history"]) == ["generation"]
    assert [s.name for s in compiled.steps] == ["classification", "retrieval", "generation", "safety"]


def test_steps_subset_builds_only_those(tmp_path: Path) -> None:
    compiled = compile(SUPPORT, settings(tmp_path), Metrics(), embedded=False, worker="w", directory=LOCAL, only=("generation",))
    assert [app.conf.id for app in compiled.apps] == ["conveyor-support-generation"]


def test_unknown_component_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--steps names \['generatoin'\]"):
        compile(SUPPORT, settings(tmp_path), Metrics(), embedded=False, worker="w", directory=LOCAL, only=("generatoin",))
    assert component_names(SUPPORT)[0] == "ingress"


def test_embedded_settings_only_for_the_embedded_broker(tmp_path: Path) -> None:
    from streams import tansu

    real = compile(SUPPORT, settings(tmp_path), Metrics(), embedded=False, worker="w", directory=LOCAL, only=("safety",)).apps[0]
    emb = compile(SUPPORT, settings(tmp_path), Metrics(), embedded=True, worker="w", directory=LOCAL, only=("safety",)).apps[0]
    assert emb.conf.broker_session_timeout == 6.0 and real.conf.broker_session_timeout != 6.0
    assert emb in tansu._apps and real not in tansu._apps
