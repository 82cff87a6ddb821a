"""The image kinds' registry as doit sees it: one task group per kind, each listed with
its doc, and a run that builds nothing loads none of the kinds' action code."""

from __future__ import annotations

import re
import subprocess
import sys

from tasks.kinds import KINDS
from tests.sites import REPO, Site

# Runs doit as `python -m doit` does, then names every module the run imported.
DOIT_THEN_MODULES = """
import atexit, sys
atexit.register(lambda: print("modules:", *sorted(sys.modules), file=sys.stderr))
from doit.doit_cmd import DoitMain
sys.exit(DoitMain().run(sys.argv[1:]))
"""
# What only an action needs: Jinja2, the recipes, the staging tree and the image writers,
# converge, the keys and cryptography; of images/, a run needs only the modes of private.py.
KINDS_PER_DOMU = ("local", "pkg", "swap", "xen")
ACTION_ONLY = re.compile(
    r"^(jinja2|cryptography|tasks\.(recipes|converge|cgd\.keys|images\.(?!private$)\w+))\b"
)


def test_every_kind_is_a_task_group_listed_with_its_doc(tmp_path):
    site = Site(tmp_path / "site")
    site.output.mkdir()  # doit opens its database there, even to list
    run = site.doit("list")
    assert run.returncode == 0, run.stderr
    groups = dict(line.split(maxsplit=1) for line in run.stdout.splitlines())
    assert groups == {kind.NAME: kind.DOC for kind in KINDS}
    assert set(groups) == {"fetch", "root", "local", "pkg", "swap", "xen", "hotplug"}


def test_a_build_runs_the_kinds_in_order_then_a_run_imports_no_action_code(tmp_path):
    site = Site(tmp_path / "site")  # no encrypted image: their keys are made on every run
    ran = re.findall(r"^built +(\S+)", site.build().stdout, re.M)
    domus = list(site.data["domains"])
    assert ran == ["root"] + [f"{kind}:{name}" for kind in KINDS_PER_DOMU for name in domus]
    doit = ["-f", str(REPO / "dodo.py"), "-d", str(REPO), f"config={site.path}"]
    done = subprocess.run(
        [sys.executable, "-c", DOIT_THEN_MODULES, *doit],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^0 built, 13 up to date in ", done.stdout, re.M), done.stdout
    modules = done.stderr.rpartition("modules:")[2].split()
    assert "tasks.kinds.root" in modules
    assert [m for m in modules if ACTION_ONLY.match(m)] == []
