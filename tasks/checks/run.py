"""The runner of `./domus check`: every check function over the site, one table of findings.

A check is a function `(site, layout) -> Iterable[Finding]`; CHECKS lists them in the order
they run. A new kind of check (the dom0's vnd and cgd nodes, its bridges) is one module
with one such function, added to CHECKS.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import TextIO

from tasks.checks import Finding
from tasks.checks.dom0 import check_dom0
from tasks.checks.images import check_images
from tasks.checks.xl import check_xl_configs
from tasks.run.errors import require_known
from tasks.site import Layout, Site

Check = Callable[[Site, Layout], Iterable[Finding]]

CHECKS: list[Check] = [
    check_images,
    check_xl_configs,
    check_dom0,
]


def select(site: Site, names: Sequence[str]) -> Site:
    """The site with only the named domUs (all of them when none is named)."""
    if not names:
        return site
    require_known(names, {domu.name for domu in site.domus}, "domain", site.path)
    return dataclasses.replace(site, domus=tuple(d for d in site.domus if d.name in names))


def run_checks(
    site: Site, checks: Sequence[Check] = CHECKS, *, every_image: bool = False
) -> list[Finding]:
    """Every finding of `checks`; an image unchanged since its last check keeps its
    findings unless `every_image` (`./domus check --all`)."""
    layout = site.layout
    if every_image:
        checks = [partial(check_images, every=True) if c is check_images else c for c in checks]
    findings: list[Finding] = []
    for check in checks:
        findings.extend(check(site, layout))
    return findings


def table(findings: Sequence[Finding]) -> str:
    rows = [("subject", "check", "result")] + [(f.subject, f.check, _result(f)) for f in findings]
    widths = [max(len(row[column]) for row in rows) for column in (0, 1)]
    return "".join(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]}\n" for row in rows)


def _result(finding: Finding) -> str:
    if finding.problem is None:
        return "ok"
    if finding.skipped:
        return f"skipped: {finding.problem}"
    return f"{'WARNING' if finding.warning else 'FAILED'}: {finding.problem}"


def warning_lines(findings: Sequence[Finding]) -> list[str]:
    warned = [f for f in findings if f.warning and f.problem]
    return [f"{f.subject}: {f.check}: warning: {f.problem}" for f in warned]


def skipped_lines(findings: Sequence[Finding]) -> list[str]:
    return [f"{f.subject}: {f.check}: skipped: {f.problem}" for f in findings if f.skipped]


def failure_lines(findings: Sequence[Finding]) -> list[str]:
    """One line a failure, for cron's mail and the nightly report."""
    return [f"{f.subject}: {f.check}: {f.problem}" for f in findings if not f.ok]


def report(findings: Sequence[Finding], out: TextIO) -> int:
    """A table on a terminal, only the failures, warnings and what was skipped otherwise;
    1 when anything failed (a warning or a skip alone fails nothing)."""
    if out.isatty():
        out.write(table(findings))
    else:
        lines = failure_lines(findings) + warning_lines(findings) + skipped_lines(findings)
        out.write("".join(line + "\n" for line in lines))
    failed = sum(not f.ok for f in findings)
    warned = len(warning_lines(findings))
    if out.isatty():
        skipped = len(skipped_lines(findings))
        also = (f", {warned} warned" if warned else "") + (
            f", {skipped} skipped" if skipped else ""
        )
        out.write(f"{len(findings)} checks, {failed} failed{also}\n")
    return 1 if failed else 0
