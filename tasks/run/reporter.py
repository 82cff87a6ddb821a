"""What a build prints: one line per task that ran, each failure in words, one summary.

    built    root          0.4 s  the shared read-only root.img and the kernel beside it
    FAILED   local:www1           templates/local/etc/motd: 'nosuch' is undefined
                                  hint: variables a template can use are listed in docs/templates.md
    not run  xen:www1             local:www1 failed
    1 built, 11 up to date, 1 failed, 1 not run in 0.5 s

Colour only on a terminal that is not TERM=dumb, and never with NO_COLOR set. The tasks
that ran and failed are kept on the reporter, so `./domus nightly` reads them from here
rather than from the text.
Set as `reporter` in DOIT_CONFIG, so plain `doit` in the repository prints the same.
"""

from __future__ import annotations

import os
import time
from typing import TextIO

from doit.exceptions import BaseFail, DependencyError, TaskFailed, UnmetDependency

from tasks.run.log import DEBUG

BUG_HINT = "this is a bug in domus; DOMUS_DEBUG=1 shows where it happened"
COLOURS = {"built": "32", "FAILED": "1;31", "not run": "33", "ignored": "33"}


def wants_colour(stream: TextIO) -> bool:
    """On a terminal that shows colour, unless NO_COLOR is set (and not empty, as
    no-color.org has it)."""
    isatty = getattr(stream, "isatty", None)
    dumb = os.environ.get("TERM") in (None, "", "dumb")
    return bool(isatty and isatty()) and not dumb and not os.environ.get("NO_COLOR")


def failure_text(task_name: str, fail: BaseFail, tracebacks: bool = DEBUG) -> str:
    """What went wrong, for the operator: our own message as it is, doit's wording of a
    missing input without its prefix, and an unexpected exception as its last line only."""
    if isinstance(fail, TaskFailed):
        return fail.message.strip()
    if isinstance(fail, DependencyError):
        return fail.message.removeprefix(f"ERROR: Task '{task_name}' ").strip()
    if tracebacks:
        return fail.get_msg().strip()
    last = "".join(fail.traceback).strip().splitlines()[-1:] or [fail.message.strip()]
    return f"{last[0]}\n  hint: {BUG_HINT}"


class Reporter:
    """A doit reporter (see doit.reporter.ConsoleReporter for the calls it answers)."""

    desc = "domus: one line per task that ran, failures in words, a summary"

    def __init__(
        self,
        outstream: TextIO,
        options: dict[str, object] | None = None,
        *,
        colour: bool | None = None,
        tracebacks: bool = DEBUG,
    ) -> None:
        self.out = outstream
        self.colour = wants_colour(outstream) if colour is None else colour
        self.tracebacks = tracebacks
        self.start = time.monotonic()
        self.started: dict[str, float] = {}
        self.width = 0
        self.built: list[str] = []
        self.up_to_date: list[str] = []
        self.failed: dict[str, str] = {}  # task name: what went wrong
        self.not_run: dict[str, list[str]] = {}  # task name: the failed tasks it needed
        self.skipped: list[str] = []  # those of them that do something (not groups)
        self.errors: list[str] = []
        self.finished: set[str] = set()  # tasks that ran to an end, shown or not

    # -- doit's calls ----------------------------------------------------------------------

    def initialize(self, tasks: dict, selected_tasks: list[str]) -> None:
        self.width = max((len(name) for name, task in tasks.items() if _shown(task)), default=0)

    def get_status(self, task) -> None:
        pass

    def execute_task(self, task) -> None:
        self.started[task.name] = time.monotonic()

    def add_success(self, task) -> None:
        self.finished.add(task.name)
        if not _shown(task):
            return
        self.built.append(task.name)
        seconds = time.monotonic() - self.started.get(task.name, self.start)
        text = task.doc or ""
        converged = getattr(task, "values", {}).get("converged")  # a local.img already there
        if converged is not None:
            name = task.name.partition(":")[2]
            text = f"local.img of {name}: " + (
                "converged (its managed files updated in place)"
                if converged
                else "kept (built from these inputs already)"
            )
        self._line("built", task.name, text, f"{seconds:5.1f} s")

    def add_failure(self, task, fail: BaseFail) -> None:
        if isinstance(fail, UnmetDependency):
            causes = self._causes(fail.message.split())
            self.not_run[task.name] = causes
            if _shown(task):
                self.skipped.append(task.name)
                self._line("not run", task.name, _failed_words(causes))
            return
        self.finished.add(task.name)
        message = failure_text(task.name, fail, self.tracebacks)
        self.failed[task.name] = message
        output = "".join(
            text for action in task.actions for text in (action.out, action.err) if text
        ).strip()
        self._line("FAILED", task.name, f"{message}\n{output}".strip())

    def skip_uptodate(self, task) -> None:
        if _shown(task):
            self.up_to_date.append(task.name)

    def skip_ignore(self, task) -> None:
        if _shown(task):
            self._line("ignored", task.name, "`doit forget` undoes `doit ignore`")

    def cleanup_error(self, exception: BaseFail) -> None:
        self.errors.append(exception.message)

    def runtime_error(self, msg: str) -> None:
        self.errors.append(msg)

    def teardown_task(self, task) -> None:
        pass

    def complete_run(self) -> None:
        for error in self.errors:
            self.out.write(f"domus: {error}\n")
        counts = [f"{len(self.built)} built", f"{len(self.up_to_date)} up to date"]
        if self.failed:
            counts.append(self._paint("FAILED", f"{len(self.failed)} failed"))
        if self.skipped:
            counts.append(f"{len(self.skipped)} not run")
        if self.interrupted:
            counts.append(self._paint("FAILED", f"interrupted in {', '.join(self.interrupted)}"))
        self.out.write(f"{', '.join(counts)} in {time.monotonic() - self.start:.1f} s\n")
        self.out.flush()

    @property
    def interrupted(self) -> list[str]:
        """Tasks that started and never ended: the run was interrupted (Ctrl-C, SIGTERM)
        while they ran, as doit reports the run complete on its way out."""
        return [name for name in self.started if name not in self.finished]

    # -- helpers ---------------------------------------------------------------------------

    def _causes(self, names: list[str]) -> list[str]:
        """The tasks that failed themselves, behind tasks that were not run in turn."""
        causes: list[str] = []
        for name in names:
            for cause in self.not_run.get(name, [name]):
                if cause not in causes:
                    causes.append(cause)
        return causes

    def _line(self, status: str, name: str, text: str, seconds: str = "") -> None:
        """`status name seconds text`, in columns; the text's further lines below its first."""
        first, *rest = text.splitlines() or [""]
        head = f"{self._paint(status, f'{status:<8}')} {name:<{self.width}}  {seconds:>7}  "
        margin = " " * (8 + 1 + self.width + 2 + 7 + 2)
        lines = [head + first, *(margin + line for line in rest)]
        self.out.write("".join(line.rstrip() + "\n" for line in lines))
        self.out.flush()

    def _paint(self, status: str, text: str) -> str:
        if not self.colour:
            return text
        return f"\033[{COLOURS[status]}m{text}\033[0m"


def _shown(task) -> bool:
    """Tasks that do something: not the groups (fetch, local...) nor hidden ones."""
    return bool(task.actions) and not task.name.startswith("_")


def _failed_words(names: list[str]) -> str:
    if len(names) == 1:
        return f"{names[0]} failed"
    return f"{', '.join(names[:-1])} and {names[-1]} failed"
