"""Conveyor's dataflow: pipelines of steps compiled to Faust stream processors on Kafka topics.

Reading order: ``app`` (settings, app factory) → ``topics`` → ``envelope`` (wire formats) →
``graph`` / ``pipeline_file`` / ``builder`` (pipeline specs) → ``topology`` (specs → Faust apps) →
``faust_adapter`` / ``acks`` / ``dispatch`` (agents, ordered acks) → ``ingress`` / ``processor`` /
``joins`` / ``parking`` / ``approvals`` / ``budget`` / ``spend`` / ``ledger`` (one message) → ``outputs`` /
``state`` / ``privacy`` → ``policy`` →
``metrics`` / ``tracing`` → ``worker`` / ``directory`` → ``broker`` / ``tansu`` (embedded broker)
→ ``client`` / ``cli`` / ``replay``; ``testing`` runs a pipeline in-process.

Nothing is imported eagerly beyond light modules: Faust loads only when an app is built.

A user's steps need only this package: ``step`` and ``tool`` declare them, ``StepContext`` is what
a step sees besides its input, and ``RetryableStepError`` / ``FatalStepError`` say how it failed, ``RejectedStepError`` that it refuses.
"""

from steps.base import FatalStepError, RejectedStepError, RetryableStepError, StepContext
from steps.deps import Deps
from steps.registry import step, tool
from streams.app import Settings, create_app
from streams.broker import EmbeddedBroker
from streams.client import Client
from streams.envelope import DeadLetter, Envelope, Request, Result
from streams.errors import (
    BrokerError,
    BrokerStartError,
    BrokerUnreachableError,
    ConfigError,
    ConveyorError,
    EnvelopeDecodeError,
    GraphError,
    ResultTimeoutError,
)
from streams.graph import BLOCK, END, FAIL, REJECT, GraphSpec, Node, Policy, validate
from streams.builder import Pipeline
from streams.pipeline_file import load_pipeline

__all__ = [
    "BLOCK",
    "END",
    "FAIL",
    "REJECT",
    "BrokerError",
    "BrokerStartError",
    "BrokerUnreachableError",
    "Client",
    "ConfigError",
    "ConveyorError",
    "DeadLetter",
    "Deps",
    "EmbeddedBroker",
    "Envelope",
    "EnvelopeDecodeError",
    "FatalStepError",
    "GraphError",
    "GraphSpec",
    "Node",
    "Pipeline",
    "Policy",
    "RejectedStepError",
    "Request",
    "Result",
    "ResultTimeoutError",
    "RetryableStepError",
    "Settings",
    "StepContext",
    "create_app",
    "load_pipeline",
    "step",
    "tool",
    "validate",
]
