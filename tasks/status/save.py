"""After a build: the inputs of every task that succeeded or was up to date recorded for
`./domus status` (tasks.status.record), and, after a complete successful run, the record
that makes the next no-op build and status instant (tasks.run.noop)."""

from __future__ import annotations

from pathlib import Path

from tasks.render import BUILTIN
from tasks.run import noop
from tasks.run.build import Build
from tasks.run.locks import lock_path
from tasks.run.reporter import Reporter
from tasks.status import record
from tasks.status.items import Item, items


def record_run(build: Build, reporter: Reporter, complete: bool) -> None:
    """`complete`: the run was of every task of the site and none failed."""
    found = items(build)
    trees = record.Trees()
    done = {*reporter.built, *reporter.up_to_date}
    record.save(build.layout, found, done, trees)
    complete = complete and not reporter.failed and not reporter.not_run
    if complete and not build.site.root.downloads:
        noop.write(
            build.site.path,
            build.layout.output,
            lock_path(build.layout.locks, "run"),
            watched(build, found),
            {str(top): trees.fingerprint(top) for item in found for top in item.trees.values()},
            [[i.task, i.domain, i.image, str(i.path)] for i in found],
            len(done),
        )


def watched(build: Build, found: list[Item]) -> list[str]:
    """Every path whose change the next no-op build must notice."""
    layout, site = build.layout, build.site
    # not doit's database: every doit run writes it, and any that could change it (forget,
    # clean, ignore) takes the run lock, which removes the record (tasks.run.build.start_run)
    paths: set[str] = set()
    for item in found:
        paths.update(map(str, item.targets))
        paths.update(map(str, item.files.values()))
        # packages are found beside the named ones: a package added there is an input
        paths.update(
            str(p.parent) for label, p in item.files.items() if label.startswith("package")
        )
    tops: list[Path] = [d for d in (site.templates, BUILTIN, site.keys) if d is not None]
    tops.append(layout.images / "generations" / "slots")
    for top in tops:
        paths.update(noop.walk(top))
    return sorted(paths)
