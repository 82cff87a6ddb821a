"""Progress of a long step on a terminal: one line on stderr, redrawn a few times a second,
erased when the step ends; nothing at all when stderr is not a terminal (cron, a pipe,
a log file), so what cron mails and what a log keeps stay the lines domus prints.

Our own rather than a library (tqdm, rich): what it needs is one line and a tty test; it
must never write anything but that line, and the steps it follows run in doit actions
(stderr passed through), in cgd worker pools (counted in the parent) and in tools such
as makefs that say nothing while they work (watched from a thread).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

INTERVAL = 0.25  # seconds between redraws
MiB = 1 << 20
ERASE = "\r\033[K"  # back to the start of the line, and clear it


def on_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):  # replaced by something without a descriptor, closed
        return False


class Progress:
    """`label: 12.0 of 40.0 MiB (30%)` (or `1200 of 4000 files`), on a terminal only.

    `total` may be None (unknown): then only what is done, and the seconds, are shown.
    """

    def __init__(
        self,
        label: str,
        total: int | None = None,
        unit: str = "MiB",
        stream: TextIO | None = None,
    ) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.stream = stream or sys.stderr
        self.enabled = on_terminal(self.stream)
        self.done = 0
        self.start = time.monotonic()
        self.last = 0.0
        self.shown = False
        self.lock = threading.Lock()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def advance(self, amount: int) -> None:
        self.update(self.done + amount)

    def update(self, done: int, *, force: bool = False) -> None:
        self.done = done
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self.last < INTERVAL:
            return
        self.last = now
        with self.lock:
            self.stream.write(ERASE + self.line(now))
            self.stream.flush()
            self.shown = True

    def line(self, now: float) -> str:
        def amount(value: int) -> str:
            return f"{value / MiB:.1f}" if self.unit == "MiB" else str(value)

        seconds = f"{now - self.start:.0f} s"
        if self.total:
            percent = min(100, self.done * 100 // self.total)
            return (
                f"{self.label}: {amount(self.done)} of {amount(self.total)} {self.unit} "
                f"({percent}%), {seconds}"
            )
        return f"{self.label}: {amount(self.done)} {self.unit}, {seconds}"

    def close(self) -> None:
        with self.lock:
            if self.shown:
                self.stream.write(ERASE)
                self.stream.flush()
                self.shown = False


@contextmanager
def watching(
    label: str, measure: Callable[[], int | None], total: int | None = None, unit: str = "MiB"
) -> Iterator[Progress]:
    """Progress of work done elsewhere (a tool that prints nothing): `measure()` is asked
    every INTERVAL from a thread, and shown; None when it cannot tell (then only the
    seconds are shown)."""
    progress = Progress(label, total, unit)
    if not progress.enabled:
        yield progress
        return
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(INTERVAL):
            try:
                value = measure()
            except OSError:
                value = None
            progress.update(progress.done if value is None else value, force=True)

    thread = threading.Thread(target=poll, name=f"progress {label}", daemon=True)
    thread.start()
    try:
        yield progress
    finally:
        stop.set()
        thread.join()
        progress.close()


def bytes_read_by(pid: int) -> int | None:
    """What process `pid` has read so far (Linux's /proc/PID/io `rchar`); None elsewhere."""
    try:
        with open(f"/proc/{pid}/io") as io:
            for line in io:
                if line.startswith("rchar:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None
