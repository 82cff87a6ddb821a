"""domus: doit builds the site described in config/site.yaml (or `doit config=PATH`).

Tasks: fetch:NAME (sets and kernel given by URL), root, then per domU local:NAME,
pkg:NAME, swap:NAME and xen:NAME.
"""

import sys
from pathlib import Path

from doit import get_var

from tasks.dodo_support import Build, doit_config, load_or_exit
from tasks.site import DEFAULT_SITE

_build = Build(
    load_or_exit(Path(get_var("config", str(DEFAULT_SITE)))),
    {name for name in get_var("reprovision", "").split(",") if name},
)
_build.take_run_lock(sys.argv)

DOIT_CONFIG = doit_config(_build.layout)


def task_fetch():
    yield from _build.fetch()


def task_root():
    return _build.root()


def task_local():
    yield from _build.local()


def task_pkg():
    yield from _build.pkg()


def task_swap():
    yield from _build.swap()


def task_xen():
    yield from _build.xen()


def task_hotplug():
    yield from _build.hotplug()
