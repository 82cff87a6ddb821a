"""doit actions fail with the operator's message, not a Python traceback."""

from __future__ import annotations

import functools
from collections.abc import Callable

from doit.exceptions import TaskFailed

from tasks.errors import DomusError


def action(func: Callable[..., None]) -> Callable[..., object]:
    @functools.wraps(func)
    def run(*args: object, **kwargs: object) -> object:
        try:
            func(*args, **kwargs)
        except DomusError as error:
            return TaskFailed(str(error))
        return None

    return run
