"""Conveyor steps: pure AI logic (classification, retrieval, generation, safety) with no Kafka in sight.

Every step, built-in or a user's, is declared with ``@step("name")`` (:mod:`steps.registry`);
importing this package registers the built-in ones, and :func:`registered` lists them all.
Steps get their shared models and clients in ``warm_up(deps)`` (:class:`steps.deps.Deps`).
"""

from steps.base import (
    FatalStepError,
    RejectedStepError,
    RetryableStepError,
    Step,
    StepContext,
    StepError,
    StepModel,
    Turn,
)
from steps.classification import Classification
from steps.deps import Deps, ResourceConfig
from steps.approval import Approval
from steps.echo import Echo
from steps.generation import Generation
from steps.registry import (
    StepConfigError,
    StepDef,
    StepDefinitionError,
    StepImportError,
    StepLoadError,
    StepRunner,
    ToolDef,
    UnknownStepError,
    registered,
    resolve,
    step,
    tool,
    tools,
)
from steps.retrieval import Retrieval
from steps.safety import Safety

# the workflows' steps (research, devteam, ...): importing registers their names for pipeline files
import steps.devteam  # noqa: E402,F401
import steps.onboarding  # noqa: E402,F401
import steps.planner  # noqa: E402,F401
import steps.research  # noqa: E402,F401

__all__ = [
    "Approval",
    "Classification",
    "Deps",
    "Echo",
    "FatalStepError",
    "Generation",
    "RejectedStepError",
    "ResourceConfig",
    "Retrieval",
    "RetryableStepError",
    "Safety",
    "Step",
    "StepConfigError",
    "StepContext",
    "StepDef",
    "StepDefinitionError",
    "StepError",
    "StepImportError",
    "StepLoadError",
    "StepModel",
    "StepRunner",
    "ToolDef",
    "Turn",
    "UnknownStepError",
    "registered",
    "resolve",
    "step",
    "tool",
    "tools",
]
