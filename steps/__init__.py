"""Conveyor steps: pure AI logic (classification, retrieval, generation, safety) with no Kafka in sight.

Each step implements :class:`steps.base.Step`; :data:`STEPS` maps step names to their classes.
"""

from steps.base import FatalStepError, RetryableStepError, Step, StepContext, StepError, StepModel, Turn
from steps.classification import Classification
from steps.echo import Echo
from steps.generation import Generation
from steps.deps import Deps, ResourceConfig
from steps.retrieval import Retrieval
from steps.safety import Safety

STEPS: dict[str, type] = {cls.name: cls for cls in (Classification, Retrieval, Generation, Safety, Echo)}

__all__ = [
    "STEPS",
    "Classification",
    "Deps",
    "Echo",
    "FatalStepError",
    "Generation",
    "ResourceConfig",
    "Retrieval",
    "RetryableStepError",
    "Safety",
    "Step",
    "StepContext",
    "StepError",
    "StepModel",
    "Turn",
]
