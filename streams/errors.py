"""Errors raised by Conveyor's runtime. Each message says what to do next.

::

    ConveyorError
    ├── ConfigError               a setting or flag is wrong
    ├── GraphError                a pipeline graph is invalid (names the bad field)
    ├── EnvelopeDecodeError       a message is not valid JSON / fails its schema (goes to the DLQ)
    ├── MessageTooLargeError      a message to publish is over CONVEYOR_MAX_MESSAGE_BYTES
    ├── BrokerError
    │   ├── BrokerStartError      the embedded broker did not start
    │   └── BrokerUnreachableError  no broker answers at the configured address
    └── ResultTimeoutError        a result did not arrive in time (client side)
"""

from __future__ import annotations

__all__ = [
    "BrokerError",
    "BrokerStartError",
    "BrokerUnreachableError",
    "ConfigError",
    "ConveyorError",
    "EnvelopeDecodeError",
    "GraphError",
    "MessageTooLargeError",
    "ResultTimeoutError",
]


class ConveyorError(Exception):
    """Root of Conveyor's runtime errors."""


class ConfigError(ConveyorError):
    """A setting is invalid; fix the flag or the CONVEYOR_* variable named in the message."""


class GraphError(ConveyorError):
    """A pipeline graph is invalid; the message names the node and field to fix."""


class EnvelopeDecodeError(ConveyorError):
    """A message could not be decoded or validated; it is sent to conveyor.dlq with this reason."""

    def __init__(self, reason: str, request_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.request_id = request_id


class MessageTooLargeError(ConveyorError):
    """A message is over CONVEYOR_MAX_MESSAGE_BYTES; send less, or raise the limit on the broker and workers."""


class BrokerError(ConveyorError):
    """Something is wrong with the Kafka broker."""


class BrokerStartError(BrokerError):
    """The embedded broker did not start; the message says why and how to fix it."""


class BrokerUnreachableError(BrokerError):
    """No broker answers; start one with `conveyor broker` or point --broker at yours."""


class ResultTimeoutError(ConveyorError):
    """No result arrived in time; check that a worker runs (`conveyor worker`) and its logs."""
