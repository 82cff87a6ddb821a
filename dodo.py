"""domus: doit builds the site described in config/site.yaml (or `doit config=PATH`).

Tasks: fetch:NAME (sets and kernel given by URL), root, then per domU local:NAME,
pkg:NAME, swap:NAME and xen:NAME.
"""

from tasks.dodo_support import build_for_dodo

_build = build_for_dodo()

DOIT_CONFIG = _build.doit_config()


def task_fetch():
    """sets and kernel given by URL, downloaded and checked"""
    yield from _build.fetch()


def task_root():
    return _build.root()


def task_local():
    """every domU's local.img: /etc, /var, /tmp (built once, then converged)"""
    yield from _build.local()


def task_pkg():
    """every domU's pkg.img: /usr/pkg"""
    yield from _build.pkg()


def task_swap():
    """every domU's swap.img"""
    yield from _build.swap()


def task_xen():
    """every domU's xl config"""
    yield from _build.xen()


def task_hotplug():
    """the xl hotplug scripts of the dom0"""
    yield from _build.hotplug()
