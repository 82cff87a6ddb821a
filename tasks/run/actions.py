"""doit actions: imported only when their task runs, failing with the operator's message.

A no-op run checks a few hundred tasks and runs none; naming each action by module keeps
the recipes, the image writers and Jinja2 out of that run's start-up.
"""

from __future__ import annotations

import importlib

from doit.exceptions import TaskFailed

from tasks.run.errors import DomusError


class Deferred:
    """The function `module:name`, imported when doit calls it."""

    def __init__(self, target: str) -> None:
        self.target = target

    # Positional arguments only: doit hands its own keywords to a callable taking **kwargs.
    def __call__(self, *args: object) -> TaskFailed | dict | None:
        """The function's result where it is a dict (doit keeps it as the task's values),
        its DomusError as the task's failure."""
        module, _, name = self.target.partition(":")
        function = getattr(importlib.import_module(module), name)
        try:
            result = function(*args)
        except DomusError as error:
            return TaskFailed(str(error))
        return result if isinstance(result, dict) else None

    def __repr__(self) -> str:
        return f"Deferred({self.target!r})"
