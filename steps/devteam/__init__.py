"""The ``devteam`` pipeline's steps: a planner, a coder, a reviewer and a tester working on a feature request.

``streams/pipelines/devteam.yaml`` wires them: ``plan`` maps its tasks to ``code``; per task,
``code -> review`` (``changes`` loops back), ``review -> test`` (``failed`` loops back with pytest's
output), and ``collect`` joins the tasks. Reading order: :mod:`.models` (the data), :mod:`.agents`
(model calls), :mod:`.prompts` and :mod:`.replies` (what is said and how replies are read),
:mod:`.sandbox` and :mod:`.tester` (running the generated tests), :mod:`.report` (how it ends).

Importing this package registers the steps ``devteam-plan``, ``devteam-code``, ``devteam-review``,
``devteam-test``, ``devteam-unfinished`` and ``devteam-collect``.
"""

from steps.devteam.agents import Coder, Planner, Reviewer
from steps.devteam.report import collect, unfinished
from steps.devteam.tester import Tester

__all__ = ["Coder", "Planner", "Reviewer", "Tester", "collect", "unfinished"]
