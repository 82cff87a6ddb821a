"""One line per thing done, on stderr (doit shows it as the task runs)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

DEBUG = bool(os.environ.get("DOMUS_DEBUG"))


def note(message: str) -> None:
    print(f"domus: {message}", file=sys.stderr, flush=True)


@contextmanager
def timed(what: str) -> Iterator[None]:
    """Log `what` with its elapsed time when DOMUS_DEBUG is set."""
    start = time.monotonic()
    yield
    if DEBUG:
        note(f"{what}: {time.monotonic() - start:.3f} s")
