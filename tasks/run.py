"""One doit run over a site: the site loaded and checked (or a clear exit), the run lock,
the keys, and what every image kind's tasks are made from (tasks.kinds)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

from tasks.blockdev.records import any_left as attachments_left
from tasks.errors import DomusError
from tasks.locks import hold_run_lock
from tasks.render import Templates
from tasks.site import Layout, Site, load_site

EXIT_CONFIG = 78  # EX_CONFIG: doit itself uses 1 and 2 for failed tasks
# doit commands that only read: they neither need nor take the run lock.
READ_ONLY_COMMANDS = {"list", "info", "help", "dumpdb", "tabcompletion"}


def exit_config(error: DomusError) -> NoReturn:
    print(f"domus: {error}", file=sys.stderr)
    print("domus: nothing was built or changed.", file=sys.stderr)
    sys.exit(EXIT_CONFIG)


def load_or_exit(path: Path) -> Site:
    try:
        return load_site(path)
    except DomusError as error:
        exit_config(error)


def read_only(argv: list[str]) -> bool:
    """No task of ours is named like a doit command, so any of these words means that command."""
    return any(arg in READ_ONLY_COMMANDS for arg in argv[1:])


def doit_config(layout: Layout) -> dict[str, object]:
    return {
        "backend": "sqlite3",
        "dep_file": str(layout.db),
        "continue": True,
        "verbosity": 1,
    }


class Build:
    """What every image kind's tasks are made from: the site, its layout and templates, and
    the domUs whose local.img this run builds anew."""

    def __init__(self, site: Site, reprovision: set[str]) -> None:
        self.site = site
        self.layout = site.layout
        self.templates = Templates(site.templates, self.layout.cache / "template-references.json")
        unknown = reprovision - {domu.name for domu in site.domus}
        if unknown:
            print(
                f"domus: reprovision: no domain named {', '.join(sorted(unknown))} in {site.path}",
                file=sys.stderr,
            )
            sys.exit(EXIT_CONFIG)
        self.reprovision = reprovision

    def take_run_lock(self, argv: list[str]) -> None:
        if not read_only(argv):
            self.layout.output.mkdir(parents=True, exist_ok=True)
            hold_run_lock(self.layout.locks)
            if attachments_left(self.layout.locks):
                # a killed run left an image attached or mounted: undo that before anything
                from tasks.blockdev.recovery import recover_at_start

                recover_at_start(self.layout.locks)
            self.ensure_keys()

    def ensure_keys(self) -> None:
        """Keys of encrypted local images exist and are private before any task needs them."""
        encrypted = [d for d in self.site.domus if d.local.encrypt != "none"]
        if not encrypted:
            return
        from tasks.keys import ensure_local_key  # brings in cryptography: only when needed

        try:
            for domu in encrypted:
                ensure_local_key(self.site.keys, domu)
        except DomusError as error:
            exit_config(error)
