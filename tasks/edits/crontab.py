"""Switch off the daily and weekly maintenance runs in a domU's root crontab.

Every domU runs on the same read-only root, so /etc/daily and /etc/weekly would walk that
same tree in each domU at the same hour, loading the dom0's disks all at once. The lines are
commented out rather than deleted so an administrator sees what was switched off and can
switch it back on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from tasks.run.errors import EditError

_JOB = re.compile(r"[A-Za-z0-9_.-]+")


def _runs(job: str) -> re.Pattern[str]:
    # Bounded on both sides so that /etc/daily.local or /usr/etc/daily do not count.
    return re.compile(rf"(?<![\w./-])/etc/{re.escape(job)}(?![\w.-])")


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def _disable(lines: list[str], job: str) -> None:
    runs = _runs(job)
    hits = [i for i, line in enumerate(lines) if runs.search(line)]
    if not hits:
        raise EditError(
            f"no line running /etc/{job} (commented out or not) found in root's crontab",
            hint=f"give root's crontab from NetBSD's etc set, or leave {job!r} out of the jobs",
        )
    for index in hits:
        if not _is_comment(lines[index]):
            lines[index] = "#" + lines[index]


def disable_periodic(text: str, jobs: Sequence[str] = ("daily", "weekly")) -> str:
    """Comment out the crontab lines that run /etc/<job> for each job."""
    bad = [job for job in jobs if not _JOB.fullmatch(job)]
    if bad:
        raise ValueError(f"not periodic job names: {', '.join(repr(job) for job in bad)}")
    lines = text.splitlines(keepends=True)
    for job in jobs:
        _disable(lines, job)
    return "".join(lines)
