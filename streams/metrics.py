"""Prometheus metrics (DESIGN.md §4) on one passed-in registry, and the worker's HTTP endpoint.

Seconds everywhere, bounded labels only: the ``tenant`` label keeps the first
:data:`MAX_TENANTS` tenants seen and folds the rest into ``other``.
The HTTP server also answers ``/healthz`` (ready, and the input partitions each app holds) and ``/state/<table>`` (JSON dump of a table's
partitions held by this worker: for operators and for the recovery tests).
"""

from __future__ import annotations

from typing import Any, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["Metrics", "MetricsServer"]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
MAX_TENANTS = 100


class Metrics:
    """Every series Conveyor exports; one instance per worker process (or per test)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.messages = Counter(
            "conveyor_step_messages", "Messages handled by a step, by outcome.", ["pipeline", "step", "status"], registry=r
        )
        self.processing = Histogram(
            "conveyor_step_processing_seconds", "Time a step spent on a message, retries included.",
            ["pipeline", "step"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.queue = Histogram(
            "conveyor_step_queue_seconds", "Time from publish to consume of a step's input message.",
            ["pipeline", "step"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.inflight = Gauge("conveyor_step_inflight", "Messages a step is working on now.", ["pipeline", "step"], registry=r)
        self.retries = Counter("conveyor_step_retries", "Retries of a step after a retryable error.", ["pipeline", "step"], registry=r)
        self.dlq = Counter(
            "conveyor_dlq_messages", "Messages sent to the dead-letter topic.", ["pipeline", "step", "error"], registry=r
        )
        self.request_latency = Histogram(
            "conveyor_request_latency_seconds", "End-to-end latency from publish to final result.",
            ["pipeline", "status"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.tokens = Counter(
            "conveyor_tokens", "Model tokens, by direction (input/output).", ["pipeline", "step", "model", "direction"], registry=r
        )
        self.cost = Counter(
            "conveyor_cost_usd", "Model cost in US dollars.", ["pipeline", "step", "model", "tenant"], registry=r
        )
        self.lag = Gauge("conveyor_consumer_lag", "Messages not yet consumed, per input partition.", ["topic", "partition"], registry=r)
        self.table_keys = Gauge(
            "conveyor_table_keys", "Keys held in this worker's copy of a table.", ["table", "component"], registry=r
        )
        self.circuit = Gauge(
            "conveyor_circuit_state",
            "Circuit breaker of an LLM provider: 0 closed, 1 half-open (one probe call let through), 2 open (failing fast).",
            ["provider"], registry=r,
        )
        self.fallbacks = Counter(
            "conveyor_provider_fallbacks", "Answers given by the fallback provider: circuit open or every slot taken.",
            ["provider"], registry=r,
        )
        self.tier_decisions = Counter(
            "conveyor_tier_decisions",
            "Model tiers chosen before a gated node ran: by its rule (rule/default) or forced by a budget (budget).",
            ["pipeline", "step", "tier", "reason"], registry=r,
        )
        self.budget_rejections = Counter(
            "conveyor_budget_rejections", "Requests rejected because their tenant was over its daily budget.",
            ["pipeline", "tenant"], registry=r,
        )
        self.tenant_spend = Gauge(
            "conveyor_tenant_spend_usd", "A tenant's spend today (UTC) as this worker saw it at its last budget check.",
            ["tenant"], registry=r,
        )
        self._tenants: set[str] = set()
        self._fallbacks_seen: dict[str, int] = {}

    def tenant_label(self, tenant: str) -> str:
        if tenant in self._tenants or len(self._tenants) < MAX_TENANTS:
            self._tenants.add(tenant)
            return tenant
        return "other"

    def declare(self, pipeline: str, step: str) -> None:
        """Pre-create a step's series so they show (at zero) before the first message."""
        for status in ("ok", "failed", "invalid", "timeout", "rejected", "blocked", "skipped"):
            self.messages.labels(pipeline, step, status)
        self.processing.labels(pipeline, step)
        self.queue.labels(pipeline, step)
        self.inflight.labels(pipeline, step)
        self.retries.labels(pipeline, step)

    def declare_provider(self, provider: str) -> None:
        """Pre-create a provider's series (circuit closed, no fallbacks) so they show from start-up."""
        self.circuit.labels(provider).set(0)
        self.fallbacks.labels(provider)

    def report_provider(self, provider: str, state: int, fallbacks: int) -> None:
        """Circuit state (0/1/2) and the running total of fallback answers, read at scrape time."""
        self.circuit.labels(provider).set(state)
        new = fallbacks - self._fallbacks_seen.get(provider, 0)
        if new > 0:
            self.fallbacks.labels(provider).inc(new)
            self._fallbacks_seen[provider] = fallbacks

    def record_usage(self, pipeline: str, step: str, tenant: str, model: str, tokens_in: int, tokens_out: int, cost: float) -> None:
        self.tokens.labels(pipeline, step, model, "input").inc(tokens_in)
        self.tokens.labels(pipeline, step, model, "output").inc(tokens_out)
        self.cost.labels(pipeline, step, model, self.tenant_label(tenant)).inc(cost)

    def record_tier(self, pipeline: str, step: str, tier: str, reason: str) -> None:
        self.tier_decisions.labels(pipeline, step, tier, reason).inc()

    def record_budget(self, pipeline: str, tenant: str, spent_usd: float, rejected: bool) -> None:
        """A budget check: the tenant's spend as seen, and a rejection when it refused the call."""
        label = self.tenant_label(tenant)
        self.tenant_spend.labels(label).set(spent_usd)
        if rejected:
            self.budget_rejections.labels(pipeline, label).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class MetricsServer:
    """``/metrics``, ``/healthz`` and ``/state/<table>`` over aiohttp, on the worker's event loop."""

    def __init__(
        self,
        metrics: Metrics,
        host: str,
        port: int,
        state: Callable[[str], dict[str, Any] | None],
        assignments: Callable[[], dict[str, list[str]]] = dict,
        on_scrape: Callable[[], None] = lambda: None,
    ) -> None:
        self.metrics = metrics
        self.host = host
        self.port = port
        self.state = state
        self.assignments = assignments
        self.on_scrape = on_scrape
        self.ready = False
        self._runner: Any = None

    async def start(self) -> None:
        from aiohttp import web

        async def metrics(_: web.Request) -> web.Response:
            self.on_scrape()  # gauges computed on demand (consumer lag, circuit state)
            return web.Response(body=self.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

        async def healthz(_: web.Request) -> web.Response:
            body = {"ready": self.ready, "assigned": self.assignments() if self.ready else {}}
            return web.json_response(body, status=200 if self.ready else 503)

        async def state(request: web.Request) -> web.Response:
            data = self.state(request.match_info["table"])
            if data is None:
                return web.json_response({"error": "no such table in this worker"}, status=404)
            return web.json_response(data)

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        app.router.add_get("/healthz", healthz)
        app.router.add_get("/state/{table}", state)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:  # tests ask for a free port
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
