"""One doit run over a site: the site loaded and checked, the run lock, the keys, and what
every image kind's tasks are made from (tasks.kinds).

`./domus build` prepares the Build itself (tasks.run.doit) and hands it to dodo.py; plain
`doit` in the repository makes one here from its command line (`config=PATH`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from tasks.blockdev.records import any_left as attachments_left
from tasks.images.private import make_images_private, make_private_directories
from tasks.render import Templates
from tasks.run import noop
from tasks.run.errors import DomusError, SiteError, print_error, require_known
from tasks.run.locks import hold_run_lock
from tasks.run.reporter import Reporter
from tasks.site import DEFAULT_SITE, Layout, Site, load_site

# doit commands that only read: they neither need nor take the run lock.
READ_ONLY_COMMANDS = {"list", "info", "help", "dumpdb", "tabcompletion"}

handed: Build | None = None  # set by tasks.run.doit for the dodo.py it loads


def start_run(layout: Layout, *, generations: bool = True) -> None:
    """The run lock held (LockHeld when another run has it), then what a killed run left
    undone put right before any work: images it left attached or mounted, files it left
    half-written (the generations' too, unless the caller reports those itself); and the
    domUs' images private, even those made before domus made them so (tasks/images/private.py)."""
    layout.output.mkdir(parents=True, exist_ok=True)
    hold_run_lock(layout.locks)
    noop.forget(layout.output)  # this run may change what the record of the last one says
    if attachments_left(layout.locks):
        from tasks.blockdev.recovery import recover_at_start

        recover_at_start(layout.locks)
    from tasks.run.leftovers import remove_half_written

    remove_half_written(layout, generations=generations)
    make_images_private(layout.images)


def read_only(args: Sequence[str]) -> bool:
    """No task of ours is named like a doit command, so any of these words means that command."""
    return any(arg in READ_ONLY_COMMANDS for arg in args)


def prepare(site: Site, reprovision: set[str], doit_args: Sequence[str]) -> Build:
    """A doit run over `site`: (unless doit only reads) the run lock taken and the keys
    made, SiteError or LockHeld before any task starts."""
    build = Build(site, reprovision, read_only(doit_args))
    if not build.read_only:
        build.take_run_lock()
    return build


def build_for_dodo() -> Build:
    """The Build `./domus build` handed over, or one from plain doit's command line."""
    if handed is not None:
        return handed
    from doit import get_var

    reprovision = {name for name in get_var("reprovision", "").split(",") if name}
    try:
        site = load_site(Path(get_var("config", str(DEFAULT_SITE))))
        return prepare(site, reprovision, sys.argv[1:])
    except DomusError as error:
        print_error(error)
        sys.exit(error.status)


class Build:
    """What every image kind's tasks are made from: the site, its layout and templates, and
    the domUs whose local.img this run builds anew."""

    def __init__(self, site: Site, reprovision: set[str], read_only: bool = False) -> None:
        self.site = site
        self.layout = site.layout
        self.templates = Templates(site.templates, self.layout.cache / "template-references.json")
        self.read_only = read_only
        self.reporter: Reporter | None = None  # the one ./domus made, to read its results
        require_known(sorted(reprovision), {domu.name for domu in site.domus}, "domain", site.path)
        self.reprovision = reprovision

    def doit_config(self) -> dict[str, object]:
        db = self.layout.db
        return {
            "backend": "sqlite3",
            # a read-only command on a site never built has no database to read, nor a
            # directory to make one in: an empty one in memory answers the same
            "dep_file": ":memory:" if self.read_only and not db.exists() else str(db),
            "continue": True,
            "verbosity": 1,
            "reporter": self.reporter or Reporter,
        }

    def take_run_lock(self) -> None:
        start_run(self.layout)
        # before any task puts a file there (a pkg.img link, an inputs record)
        make_private_directories([self.layout.domu_dir(d.name) for d in self.site.domus])
        self.ensure_keys()

    def ensure_keys(self) -> None:
        """Keys of encrypted local images exist and are private before any task needs them."""
        encrypted = [d for d in self.site.domus if d.local_encrypted]
        if not encrypted:
            return
        from tasks.cgd.keys import ensure_local_key  # brings in cryptography: only when needed

        try:
            for domu in encrypted:
                ensure_local_key(self.site.keys, domu)
        except DomusError as error:
            raise SiteError(error.message, error.hint) from None
