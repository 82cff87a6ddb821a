"""The image kinds' registry as doit sees it: one task group per kind, each listed with
its doc, and a run that builds nothing loads none of the kinds' action code; a new kind,
defined here, is built, kept as generations, attached and checked from its module alone."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from types import ModuleType

import pytest

from tasks import kinds
from tasks.checks.dom0 import netbsd_findings
from tasks.checks.images import check_images
from tasks.checks.xl import check_xl_configs, named_files
from tasks.cli import build_site
from tasks.generations.slots import (
    ROOT,
    Slot,
    from_key,
    parse_slots,
    pkg_slot,
    pool_names,
    site_slots,
)
from tasks.generations.store import Store
from tasks.kinds import every
from tasks.run.errors import UsageError
from tasks.site import load_site
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
    assert groups == {kind.NAME: kind.DOC for kind in every()}
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


# A kind as short as one can be, defined here: each domU gets a sparse scratch.img, kept as
# generations and attached as a fifth disk. Nothing outside this text names it.
SCRATCH = """
from doit.tools import config_changed

from tasks.run.actions import Deferred
from tasks.generations.slots import Pool, Slot, stable_links
from tasks.kinds.xen import Disk
from tasks.site import Place

NAME = "scratch"
DOC = "each domU's scratch.img"
IMAGE = Place("images/{domu}/scratch.img")
POOL = Pool(NAME, IMAGE)
DISK = Disk("xvde", "rw")
SIZE = 1 << 20


def tasks(build):
    for domu in build.site.domus:
        yield {
            "name": domu.name,
            "actions": [(Deferred("tasks.kinds.scratch:build"), [domu.name, build.layout])],
            "targets": [str(build.layout.at(IMAGE, domu=domu.name))],
            "uptodate": [config_changed({"size": SIZE})],
        }


def build(name, layout):
    from tasks.generations.making import make_generation

    slot = Slot(NAME, name)

    def write(generation):
        with open(generation / slot.image, "wb") as image:
            image.truncate(SIZE)

    make_generation(layout, slot, {"size": str(SIZE)}, write, stable_links(layout, slot, None))
"""


def scratch_slot(domu: str) -> Slot:
    return Slot("scratch", domu)


@pytest.fixture
def scratch(monkeypatch) -> ModuleType:
    """The kind above, registered as every kind is: a module tasks.kinds.NAME, named in the
    registry."""
    module = ModuleType("tasks.kinds.scratch")
    exec(compile(SCRATCH, "tasks/kinds/scratch.py", "exec"), module.__dict__)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr(kinds, "NAMES", (*kinds.NAMES, "scratch"))
    return module


def test_a_new_kind_is_built_kept_attached_and_checked_from_its_module_alone(
    tmp_path, scratch, capsys
):
    site = load_site(Site(tmp_path / "site").path)
    assert build_site(site, []) == 0, capsys.readouterr().out
    assert re.search(r"^built +scratch:www1\b", capsys.readouterr().out, re.M)
    layout, names = site.layout, [domu.name for domu in site.domus]

    # the Layout: where the kind said, a link to the active generation, as root.img and pkg.img
    image = layout.at(scratch.IMAGE, domu="www1")
    assert image == layout.domu_dir("www1") / "scratch.img"
    assert image.is_symlink() and image.stat().st_size == scratch.SIZE
    store = Store(layout)
    generation = store.active(Slot("scratch", "www1"))
    assert image.resolve() == (store.pool("scratch") / generation / "scratch.img").resolve()

    # the slots: a pool like pkg's, by the names its doit tasks have
    assert pool_names() == ("root", "pkg", "scratch")
    assert site_slots(names) == [ROOT, *map(pkg_slot, names), *map(scratch_slot, names)]
    assert parse_slots("scratch", names) == [Slot("scratch", name) for name in names]
    assert parse_slots("scratch:db1", names) == [Slot("scratch", "db1")]
    assert from_key("scratch.db1") == Slot("scratch", "db1") and from_key("scratch") is None
    assert {Slot("scratch", name) for name in names} <= set(store.slots())
    with pytest.raises(UsageError) as refused:
        parse_slots("nothing", names)
    assert refused.value.hint == (
        "name root, pkg:NAME (one domU's pkg.img), pkg (every pkg.img), "
        "scratch:NAME (one domU's scratch.img) or scratch (every scratch.img)"
    )

    # the xl config: a fifth disk after the four it had, in the form of the others
    config = layout.xen_config("www1").read_text()
    disks = re.findall(r"^\t'(.*)',$", config, re.M)
    assert len(disks) == 5 and disks[3].startswith("format=raw, vdev=xvdd, access=ro, ")
    assert disks[4] == f"format=raw, vdev=xvde, access=rw, target={image}"
    assert ("disk xvde target", str(image)) in named_files(config)

    # the checks: the xl configs name it, each domU's is published, the dom0 has a vnd for it
    xl = {(f.subject, f.check): f for f in check_xl_configs(site, layout)}
    assert xl["xen/www1.cfg", "disk xvde target exists"].ok
    found = {f.subject: f for f in check_images(site, layout) if f.check == "published"}
    assert all(found[f"{name}/scratch.img"].ok for name in names)
    image.unlink()
    found = {f.subject: f for f in check_images(site, layout) if f.check == "published"}
    assert found["www1/scratch.img"].problem == "missing; `./domus build` makes it"
    assert found["db1/scratch.img"].ok
    (vnds,) = [f for f in netbsd_findings(site, [], None) if f.check.startswith("vnd(4)")]
    assert vnds.check == (
        "vnd(4) nodes: 19 needed (5 file-backed disks (root, swap, local, pkg, scratch) "
        "for each of 3 domUs, and blockdev.units 4)"
    )


def test_each_kind_attaches_its_disk_at_a_virtual_device_of_its_own():
    disks = {kind.NAME: kind.DISK for kind in every() if hasattr(kind, "DISK")}
    assert {name: disk.vdev for name, disk in disks.items()} == {
        "root": "xvda",
        "local": "xvdc",
        "pkg": "xvdd",
        "swap": "xvdb",
    }


def test_the_steps_on_a_tree_and_the_image_writers_import_no_kind():
    """kinds are above recipes, edits and images: what they share is handed down."""
    below = [REPO / "tasks" / package for package in ("recipes", "edits", "images")]
    importing = []
    for path in (file for top in below for file in sorted(top.rglob("*.py"))):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            if any(name.startswith("tasks.kinds") for name in names):
                importing.append(str(path.relative_to(REPO)))
    assert importing == []
