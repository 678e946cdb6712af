"""Settings (flags, then ``CONVEYOR_*`` variables, then defaults) and the Faust app factory.

Nothing is built at import time: ``Settings()`` reads the environment when called and
``create_app`` makes a new ``faust.App`` each call, so tests can run many apps side by side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from streams.budget import REJECT, TIER_NAME, WILDCARD, Tier
from streams.errors import ConfigError

__all__ = ["Settings", "create_app"]

# In-flight messages per component; one session's (one key's) messages always run in order.
DEFAULT_CONCURRENCY = {"ingress": 32, "classification": 8, "retrieval": 8, "generation": 32, "safety": 8, "ledger": 32}
# USD per million (input, output) tokens; extend with CONVEYOR_PRICES='{"model": [in, out]}'
DEFAULT_PRICES = {
    "conveyor-extractive": (0.0, 0.0),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-mini": (0.40, 1.60),
}


class Settings(BaseSettings):
    """Every knob of Conveyor; each is a CLI flag (kebab-case) and a ``CONVEYOR_<NAME>`` variable."""

    model_config = SettingsConfigDict(env_prefix="CONVEYOR_", frozen=True, extra="ignore")

    broker: str = "localhost:9092"
    pipeline: Annotated[tuple[str, ...], NoDecode] = ("support",)  # names of bundled pipelines, or files
    steps: Annotated[tuple[str, ...], NoDecode] = ()
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9108
    partitions: int = Field(default=4, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    embedded: Literal["auto", "yes", "no"] = "auto"
    max_text_chars: int = Field(default=8000, ge=1)
    default_deadline_ms: int | None = Field(default=60_000, gt=0)  # for requests without their own deadline_ms
    concurrency: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_CONCURRENCY))
    history_turns: int = Field(default=6, ge=0)
    index_dir: Path = Path.home() / ".cache" / "conveyor" / "index"
    corpus: Path | None = None
    data_dir: Path = Path(".conveyor") / "data"
    llm_provider: Literal["extractive", "openai"] = "extractive"
    llm_base_url: str = "http://127.0.0.1:8000/v1"
    llm_api_key: SecretStr = SecretStr("")
    llm_model: str = "gpt-4o-mini"
    llm_timeout_s: float = Field(default=20.0, gt=0)  # per attempt
    llm_max_tokens: int = 400
    llm_breaker_failures: int = Field(default=5, ge=1)  # transient failures in a row that open the circuit
    llm_breaker_reset_s: float = Field(default=30.0, gt=0)  # open this long, then one probe call
    llm_max_concurrency: int = Field(default=16, ge=1)  # calls in flight to the LLM, per worker process
    llm_bulkhead_wait_s: float = Field(default=2.0, ge=0)  # wait for a free slot before failing fast
    llm_fallback: Literal["none", "extractive"] = "none"  # answers while the circuit is open or slots full
    # model tiers and per-tenant budgets (streams/budget.py); tiers come before prices: their prices join that table
    tiers: dict[str, Tier] = Field(default_factory=dict)  # '{"cheap": {"model": "gpt-4o-mini", ...}, "strong": ...}'
    budgets: dict[str, float] = Field(default_factory=dict)  # USD per UTC day by tenant, "*" for the others
    over_budget: str = Field(default="cheap", validate_default=True)  # "reject", or the tier to fall back to
    prices: dict[str, tuple[float, float]] = Field(default_factory=lambda: dict(DEFAULT_PRICES), validate_default=True)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    sasl_username: str = ""
    sasl_password: SecretStr = SecretStr("")
    ssl_cafile: Path | None = None
    worker_name: str = ""
    log_level: str = "warning"
    # reliability and bounded state (see streams/state.py, streams/outputs.py, streams/directory.py)
    max_message_bytes: int = Field(default=1_000_000, ge=10_000)
    state_ttl_s: float = Field(default=900.0, gt=0)
    session_ttl_s: float = Field(default=86_400.0, gt=0)
    sweep_interval_s: float = Field(default=30.0, gt=0)
    join_tick_s: float = Field(default=0.5, gt=0)  # how often a join looks for buffers past their timeout
    store_raw_pii: bool = False
    announce_every_s: float = Field(default=30.0, gt=0)
    announce_ttl_s: float = Field(default=120.0, gt=0)

    @field_validator("steps", "pipeline", mode="before")
    @classmethod
    def _split_steps(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(s.strip() for s in value.split(",") if s.strip())
        return value

    @field_validator("tiers")
    @classmethod
    def _check_tier_names(cls, value: dict[str, Tier]) -> dict[str, Tier]:
        bad = [name for name in value if not TIER_NAME.match(name)]
        if bad:
            raise ValueError(f"tier name {bad[0]!r} must match {TIER_NAME.pattern} (CONVEYOR_TIERS)")
        return value

    @field_validator("budgets")
    @classmethod
    def _check_budgets(cls, value: dict[str, float]) -> dict[str, float]:
        negative = [tenant for tenant, usd in value.items() if usd < 0]
        if negative:
            raise ValueError(f"budget of {negative[0]!r} is negative; give USD per day >= 0 "
                             f"(CONVEYOR_BUDGETS, {WILDCARD!r} for every other tenant)")
        return value

    @field_validator("over_budget")
    @classmethod
    def _check_over_budget(cls, value: str, info: ValidationInfo) -> str:
        tiers = info.data.get("tiers") or {}
        if value == REJECT or not info.data.get("budgets") or value in tiers:
            return value
        defined = f"CONVEYOR_TIERS defines {sorted(tiers)}" if tiers else "CONVEYOR_TIERS defines no tier"
        raise ValueError(f"{value!r} is not a tier ({defined}); with CONVEYOR_BUDGETS set, CONVEYOR_OVER_BUDGET must "
                         f"be {REJECT!r} or a tier of CONVEYOR_TIERS to fall back to")

    @field_validator("prices")
    @classmethod
    def _with_tier_prices(cls, value: dict[str, tuple[float, float]], info: ValidationInfo) -> dict[str, tuple[float, float]]:
        """Each tier's prices join the table (a tier's own price wins over the table's for its model)."""
        table = dict(value)
        for tier in (info.data.get("tiers") or {}).values():
            table[tier.model] = tier.prices(value)
        return table

    @field_validator("broker")
    @classmethod
    def _check_broker(cls, value: str) -> str:
        for server in value.split(","):
            host, _, port = server.strip().removeprefix("kafka://").rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"broker {server!r} must be HOST:PORT (comma-separated for several)")
        return value

    def bootstrap_servers(self) -> list[str]:
        return [s.strip().removeprefix("kafka://") for s in self.broker.split(",")]

    def concurrency_for(self, step: str) -> int:
        return max(1, int(self.concurrency.get(step, 4)))

    def client_kwargs(self) -> dict[str, Any]:
        """Security settings for aiokafka clients (producers/consumers outside Faust)."""
        kwargs: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.security_protocol.startswith("SASL"):
            kwargs.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password.get_secret_value(),
            )
        if self.security_protocol.endswith("SSL"):
            from aiokafka.helpers import create_ssl_context

            kwargs["ssl_context"] = create_ssl_context(cafile=str(self.ssl_cafile) if self.ssl_cafile else None)
        return kwargs


def _faust_credentials(settings: Settings) -> Any:
    import faust

    ssl_context = settings.client_kwargs().get("ssl_context")
    if settings.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password.get_secret_value(),
            mechanism=settings.sasl_mechanism,
            ssl_context=ssl_context,
        )
    if ssl_context is not None:
        return faust.SSLCredentials(ssl_context)
    return None


def create_app(settings: Settings, app_id: str, *, embedded: bool) -> Any:
    """A Faust app for one step (its own consumer group and tables).

    ``embedded`` applies the embedded-broker settings and fixes from ``streams.tansu``.
    """
    import faust

    if not app_id.replace("-", "").replace(".", "").isalnum():
        raise ConfigError(f"app id {app_id!r} may hold only letters, digits, '-' and '.'")
    datadir = settings.data_dir / app_id
    datadir.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = dict(
        broker=[f"kafka://{s}" for s in settings.bootstrap_servers()],
        broker_credentials=_faust_credentials(settings),
        store="memory://",
        datadir=str(datadir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        producer_acks=-1,
        web_enabled=False,
        autodiscover=False,
        table_standby_replicas=0,
        # headroom over the largest value Conveyor produces (CONVEYOR_MAX_MESSAGE_BYTES) for key and headers
        producer_max_request_size=settings.max_message_bytes + 65_536,
    )
    if embedded:
        from streams import tansu

        options.update(tansu.FAUST_SETTINGS)
    app = faust.App(app_id, **options)
    if embedded:
        tansu.apply(app)
    return app
