"""SIGTERM and Ctrl-C while an image is attached: clean up first, then stop.

Python turns Ctrl-C into KeyboardInterrupt, which runs every `finally` on its way out; a
SIGTERM would end the process on the spot. While an image is attached, SIGTERM is raised
as `Terminated` instead, so the same `finally` blocks unmount and detach; afterwards the
process ends the way SIGTERM would have ended it. While cleaning up, both signals wait.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

CLEANUP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class Terminated(BaseException):
    """SIGTERM arrived: not an error of the job, so nothing may catch it as one."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block, SIGTERM raises Terminated; leaving by it, the process then ends."""
    if not _in_main_thread() or signal.getsignal(signal.SIGTERM) is _raise_terminated:
        yield  # signals reach the main thread only; nested blocks share the outer handler
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    if previous is None:  # set outside Python: the default is the closest we can restore
        previous = signal.SIG_DFL
    try:
        yield
    except Terminated:
        signal.signal(signal.SIGTERM, previous)
        if previous == signal.SIG_DFL:
            os.kill(os.getpid(), signal.SIGTERM)  # end as SIGTERM would have ended us
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Ctrl-C and SIGTERM are held back until the block, a cleanup, has finished."""
    if not _in_main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, CLEANUP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
