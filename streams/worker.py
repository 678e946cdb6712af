"""A worker process: shared models, the compiled Faust apps (started concurrently), metrics HTTP.

Several Faust apps share one event loop under one ``mode.Worker``; starting them with
``asyncio.gather`` makes their group joins overlap (5 s instead of 4 x 4 s, scaling.md Q2).
Models are loaded and warmed before any consumer joins its group.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from steps.deps import Deps, ResourceConfig
from streams import faust_adapter
from streams.app import Settings
from streams.directory import PipelineDirectory
from streams.errors import BrokerUnreachableError, ConfigError
from streams.graph import GraphSpec
from streams.pipeline_file import load_pipeline
from streams.metrics import Metrics, MetricsServer
from streams.topology import Compiled, compile
from streams.tracing import worker_name

__all__ = ["build_worker", "detect_embedded", "load_specs", "run_worker"]

log = logging.getLogger("conveyor.worker")


def resource_config(settings: Settings) -> ResourceConfig:
    return ResourceConfig(
        index_dir=settings.index_dir,
        corpus_path=settings.corpus,
        llm_provider=settings.llm_provider,
        llm_base_url=settings.llm_base_url,
        llm_api_key=settings.llm_api_key.get_secret_value(),
        llm_model=settings.llm_model,
        llm_timeout_s=settings.llm_timeout_s,
        llm_max_tokens=settings.llm_max_tokens,
        llm_breaker_failures=settings.llm_breaker_failures,
        llm_breaker_reset_s=settings.llm_breaker_reset_s,
        llm_max_concurrency=settings.llm_max_concurrency,
        llm_bulkhead_wait_s=settings.llm_bulkhead_wait_s,
        llm_fallback=settings.llm_fallback,
        prices=dict(settings.prices),
    )


async def detect_embedded(settings: Settings) -> bool:
    from streams import tansu

    try:
        return await tansu.is_embedded(settings.embedded, settings.bootstrap_servers(), **settings.client_kwargs())
    except Exception as exc:  # noqa: BLE001 - aiokafka raises several kinds here
        raise BrokerUnreachableError(
            f"no Kafka broker answers at {settings.broker} ({exc!r}): start one with `conveyor broker` "
            "(or `conveyor up`), or point --broker / CONVEYOR_BROKER at yours"
        ) from None


def report_gauges(compiled: Compiled, metrics: Metrics) -> None:
    """Set ``conveyor_consumer_lag`` per input partition held and ``conveyor_table_keys`` (at each scrape)."""
    for app, tp in compiled.input_partitions():
        lag = faust_adapter.lag(app, tp)
        if lag is not None:
            metrics.lag.labels(tp.topic, str(tp.partition)).set(lag)
    for table, component, keys in compiled.table_sizes():
        metrics.table_keys.labels(table, component).set(keys)


def report_providers(deps: Deps, metrics: Metrics) -> None:
    """Set ``conveyor_circuit_state`` and ``conveyor_provider_fallbacks_total`` per provider (at each scrape)."""
    fallbacks = deps.fallbacks()
    for name, breaker in deps.breakers().items():
        metrics.report_provider(name, breaker.value, fallbacks.get(name, 0))


def _build_service(
    compiled: Compiled, deps: Deps, server: MetricsServer, directory: PipelineDirectory
) -> Any:
    import mode

    class ConveyorWorker(mode.Service):
        """Warms the steps, starts every app concurrently, serves metrics."""

        async def on_start(self) -> None:
            await server.start()
            log.warning("metrics on http://%s:%d/metrics", server.host, server.port)
            for runner in compiled.steps:
                await runner.warm_up(deps)  # once per runner, however many nodes share it
            await directory.start()
            await asyncio.gather(*(self.add_runtime_dependency(app) for app in compiled.apps))
            server.ready = True
            log.warning("worker ready: %s", ", ".join(app.conf.id for app in compiled.apps))

        async def on_stop(self) -> None:
            server.ready = False
            await directory.stop()
            await server.stop()
            await deps.close()

    return ConveyorWorker()


def load_specs(settings: Settings) -> list[GraphSpec]:
    """The pipelines ``--pipeline`` names (files or bundled names), loaded and validated: no consumer starts on an error."""
    specs = [load_pipeline(ref) for ref in settings.pipeline]
    names = [s.name for s in specs]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        raise ConfigError(f"two --pipeline values are both named {dup!r}; pipeline names must differ")
    return specs


def build_worker(settings: Settings, embedded: bool, specs: list[GraphSpec] | None = None) -> tuple[Any, Compiled, MetricsServer]:
    """The mode service running the pipelines of ``settings.pipeline`` (only ``settings.steps`` when given)."""
    specs = specs if specs is not None else load_specs(settings)
    metrics = Metrics()
    name = worker_name(settings.worker_name)
    directory = PipelineDirectory(
        settings, name, {s.name: s.entry for s in specs}, ttl_s=settings.announce_ttl_s, every_s=settings.announce_every_s,
        deadlines={s.name: s.deadline_ms for s in specs},
    )
    compiled = compile(specs, settings, metrics, embedded=embedded, worker=name, directory=directory, only=settings.steps)
    deps = Deps(resource_config(settings))
    for provider in deps.breakers():
        metrics.declare_provider(provider)

    def on_scrape() -> None:
        report_gauges(compiled, metrics)
        report_providers(deps, metrics)

    server = MetricsServer(
        metrics, settings.metrics_host, settings.metrics_port, compiled.table_dump, compiled.assignments,
        on_scrape=on_scrape,
    )
    return _build_service(compiled, deps, server, directory), compiled, server


def quiet_loggers(level: int = logging.WARNING) -> None:
    """aiokafka and faust log every produced message at DEBUG: building those records costs ~18%."""
    for name in ("aiokafka", "faust", "mode"):
        logging.getLogger(name).setLevel(max(level, logging.WARNING))


def run_worker(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM (blocking)."""
    import mode

    specs = load_specs(settings)  # a bad pipeline file stops here, before any consumer joins a group
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    embedded = loop.run_until_complete(detect_embedded(settings))
    service, _, _ = build_worker(settings, embedded, specs)
    if embedded:
        log.warning("embedded broker detected at %s: applying streams.tansu fixes", settings.broker)
    worker = mode.Worker(service, loglevel=settings.log_level.upper(), loop=loop, override_logging=True)
    quiet_loggers()
    worker.execute_from_commandline()
