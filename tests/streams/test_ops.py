"""The Grafana dashboard and the Prometheus config: valid, and only DESIGN.md §4 metric names."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

DESIGN_BASES = {
    "conveyor_step_messages_total", "conveyor_step_processing_seconds", "conveyor_step_queue_seconds",
    "conveyor_step_inflight", "conveyor_step_retries_total", "conveyor_dlq_messages_total",
    "conveyor_request_latency_seconds", "conveyor_tokens_total", "conveyor_cost_usd_total", "conveyor_consumer_lag",
}
SUFFIXES = ("", "_bucket", "_count", "_sum")


def dashboard_exprs() -> list[str]:
    dash = json.loads(Path("ops/grafana/dashboards/conveyor.json").read_text())
    return [t["expr"] for p in dash["panels"] for t in p["targets"]]


def test_every_panel_queries_only_design_metrics() -> None:
    allowed = {base + s for base in DESIGN_BASES for s in SUFFIXES}
    exprs = dashboard_exprs()
    assert len(exprs) >= 10
    used = {m for e in exprs for m in re.findall(r"\bconveyor_[a-z_]+", e)}
    assert used <= allowed, used - allowed
    assert {re.sub(r"_(bucket|count|sum)$", "", m) for m in used} == DESIGN_BASES  # and every metric is shown


def test_dashboard_promql_parses(tmp_path: Path) -> None:
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"conveyor:panel_{i}", "expr": e} for i, e in enumerate(dashboard_exprs())]}]}
    path = tmp_path / "rules.yml"
    path.write_text(json.dumps(rules))  # JSON is YAML
    out = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_prometheus_config_is_valid() -> None:
    out = subprocess.run(["promtool", "check", "config", "--syntax-only", "ops/prometheus.yml"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
