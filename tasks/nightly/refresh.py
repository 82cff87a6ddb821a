"""`./domus nightly`: the unattended refresh, for cron.

    30 3 * * *  /opt/domus/domus nightly config=/etc/domus/site.yaml

It takes the run lock without waiting (another run holding it: the lock message and
status 75), rebuilds what changed (the build activates new generations of images that are
not pinned), checks what is published as `./domus check` does, collects old
generations and writes one log per run to <output>/logs/. It
prints nothing when nothing changed, a summary when something did, and the failure with a
non-zero status when anything failed, so cron mails the operator exactly when there is
something to read. A run killed at any point leaves the previous generations active; the
next run removes what it left half-written and does the work again.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TextIO

from tasks.blockdev.signals import Terminated
from tasks.checks.run import failure_lines, run_checks, skipped_lines
from tasks.generations.cli import collect_now, generations_count, human_size
from tasks.generations.collect import Collected
from tasks.generations.slots import ROOT, Slot, pool_names, site_slots
from tasks.generations.store import Store
from tasks.run.build import start_run
from tasks.run.errors import DomusError
from tasks.run.reporter import Reporter
from tasks.site import Site
from tasks.sources.inputs import changes, describe

LOGS_KEPT = 100


@dataclass(frozen=True)
class Seen:
    """A slot as it was at one moment of the run."""

    active: str | None
    pinned: bool
    latest: str | None  # the generation built for it last


def look(store: Store, slots: Sequence[Slot]) -> dict[Slot, Seen]:
    seen = {}
    for slot in slots:
        state = store.state(slot)
        seen[slot] = Seen(store.active(slot), state.pinned, (state.built or [None])[-1])
    return seen


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    changed: bool = False
    failed: bool = False

    def add(self, line: str, changed: bool = True) -> None:
        self.lines.append(line)
        self.changed = self.changed or changed


def image_lines(
    store: Store, before: dict[Slot, Seen], after: dict[Slot, Seen], new: set[tuple[str, str]]
) -> list[str]:
    """One line per distinct change; domUs that moved to the same pkg generation share one."""
    groups: dict[tuple[str, str, str | None], list[Slot]] = {}
    for slot, now in after.items():
        then = before.get(slot, Seen(None, False, None))
        if now.active != then.active and now.active is not None:
            groups.setdefault(("active", now.active, then.active), []).append(slot)
        elif now.pinned and now.latest not in (then.latest, now.active) and now.latest:
            groups.setdefault(("pinned", now.latest, now.active), []).append(slot)
    lines = []
    for (kind, generation, other), slots in groups.items():
        pool = slots[0].pool
        names = ", ".join(slot.name for slot in slots[:5])
        if len(slots) > 5:
            names += f" and {len(slots) - 5} more"
        info = store.generation(pool, generation)
        how = (
            f"built in {info.seconds:.1f} s, {human_size(info.disk)} on disk"
            if (pool, generation) in new
            else "reused (built before from the same inputs)"
        )
        old = store.inputs(pool, other)
        why = f"; changed: {describe(changes(old, info.inputs))}" if old is not None else ""
        if kind == "active":
            was = f", was {other}" if other else ""
            lines.append(f"{names}: generation {generation} active{was}; {how}{why}")
        else:
            lines.append(
                f"{names}: generation {generation} {how}; not activated, pinned to {other}{why}"
            )
    return lines


class Nightly:
    def __init__(self, site: Site, config: Path) -> None:
        self.site = site
        self.config = config
        self.layout = site.layout
        self.store = Store(self.layout)

    def slots(self) -> list[Slot]:
        every = {*site_slots(d.name for d in self.site.domus), *self.store.slots()}
        return sorted(every, key=lambda slot: (slot != ROOT, slot.name))

    def run(self) -> int:
        start = time.monotonic()
        path = log_path(self.layout.output / "logs")
        with open(path, "w") as log:
            log.write(f"domus nightly {datetime.now():%Y-%m-%d %H:%M:%S}, site {self.config}\n")
            try:
                report, code = self._run(log)
            except BaseException as error:  # Ctrl-C, SIGTERM, a bug: the log says it ended
                how = "interrupted" if isinstance(error, KeyboardInterrupt) else "stopped"
                how = "terminated" if isinstance(error, Terminated) else how
                log.write(f"\ndomus nightly: {how} after {time.monotonic() - start:.1f} s\n")
                raise
            report.lines.insert(
                0,
                f"domus nightly: {'FAILED' if report.failed else 'done'} in "
                f"{time.monotonic() - start:.1f} s; log {path}",
            )
            log.write("\n" + "\n".join(report.lines) + "\n")
        prune_logs(path.parent)
        if report.failed:
            print("\n".join(report.lines), file=sys.stderr)
            return code or 1
        if report.changed:
            print("\n".join(report.lines))
        return 0

    def _run(self, log: TextIO) -> tuple[Report, int]:
        report = Report()
        with phase(log, "leftovers"):
            for leftover in self.store.remove_leftovers():
                report.add(f"removed {leftover.name}, left by a run that was killed", changed=False)
            before = look(self.store, self.slots())
            pools_before = {(pool, g) for pool in pool_names() for g in self.store.ids(pool)}
        with phase(log, "build"):
            code, reporter = self._doit(log)
        after = look(self.store, self.slots())
        new = {(pool, g) for pool in pool_names() for g in self.store.ids(pool)} - pools_before
        for line in image_lines(self.store, before, after, new):
            report.add(line)
        self._tasks(report, code, reporter)
        with phase(log, "check"):
            self._check(report, log)
        with phase(log, "garbage collection"):
            try:
                collected = collect_now(self.store, self.site.generations.keep)
            except DomusError as error:
                report.failed = True
                report.add(f"garbage collection skipped: {error}")
            else:
                self._collected(report, collected)
        return report, code

    def _tasks(self, report: Report, code: int, reporter: Reporter) -> None:
        """What the build ran besides the images, and what failed."""
        fetched = [name.partition(":")[2] for name in reporter.built if name.startswith("fetch:")]
        if fetched:
            report.add(f"downloaded: {', '.join(fetched)}")
        # downloads have their line, and images kept as generations (their pools) theirs above
        others = [n for n in reporter.built if n.split(":")[0] not in ("fetch", *pool_names())]
        if others:
            report.add(f"also ran: {', '.join(others)}")
        if code != 0:
            report.failed = True
            report.add(f"failed: {', '.join(reporter.failed) or 'see the log'}")
            for name, message in reporter.failed.items():
                report.lines.append(f"{name}: {message}")
            if reporter.skipped:
                report.add(f"not run, as a task they need failed: {', '.join(reporter.skipped)}")

    def _check(self, report: Report, log: TextIO) -> None:
        """What NetBSD would refuse of what is now published (`./domus check`)."""
        try:
            findings = run_checks(self.site)
        except DomusError as error:
            report.failed = True
            report.add(f"check skipped: {error}")
            return
        failures = failure_lines(findings)
        log.write(f"\n--- check: {len(findings)} checks, {len(failures)} failed\n")
        log.write("".join(f"{line}\n" for line in skipped_lines(findings)))
        if failures:
            report.failed = True
            report.add(f"./domus check: {len(failures)} of {len(findings)} checks failed:")
            report.lines.extend(f"  {line}" for line in failures)

    def _collected(self, report: Report, collected: Collected) -> None:
        if collected.removed:
            names = ", ".join(f"{g.pool} {g.id}" for g in collected.removed)
            report.add(
                f"garbage collection: removed {generations_count(len(collected.removed))}"
                f" ({human_size(collected.freed)}): {names}"
            )

    def _doit(self, log: TextIO) -> tuple[int, Reporter]:
        """The build, in this process, its output and that of every program it runs into
        the log; the reporter says what ran."""
        from tasks.run.build import prepare
        from tasks.run.doit import run_doit

        log.write("\n--- doit\n")
        build = prepare(self.site, set(), [])
        build.reporter = Reporter(log, colour=False, tracebacks=True)
        with output_to(log):
            code = run_doit(build, [])
        log.write(f"--- doit exit status {code}\n")
        return code, build.reporter


@contextmanager
def phase(log: TextIO, name: str) -> Iterator[None]:
    """The phase's duration written to the log when it ends, however it ends."""
    start = time.monotonic()
    try:
        yield
    finally:
        log.write(f"--- {name}: {time.monotonic() - start:.1f} s\n")
        log.flush()


@contextmanager
def output_to(log: TextIO) -> Iterator[None]:
    """stdout and stderr of this process and its children go to `log` within the block."""
    log.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    try:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, old in zip((1, 2), saved, strict=True):
            os.dup2(old, fd)
            os.close(old)


def log_path(logs: Path) -> Path:
    logs.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    path = logs / f"nightly-{stamp}.log"
    count = 1
    while path.exists():
        count += 1
        path = logs / f"nightly-{stamp}-{count}.log"
    return path


def prune_logs(logs: Path) -> None:
    for old in sorted(logs.glob("nightly-*.log"), key=lambda p: p.stat().st_mtime)[:-LOGS_KEPT]:
        old.unlink(missing_ok=True)


def nightly(site: Site) -> int:
    start_run(site.layout, generations=False)  # the generations' leftovers: reported below
    return Nightly(site, site.path).run()
