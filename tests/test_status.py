"""`./domus status` on the example site (FFS and ext2fs local images): what the next build
would do and why, without a lock and without writing; and the no-op build and status
answered from the record of the last complete run, which every change still gets past."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tasks.run import noop
from tasks.run.noop import NAME as NOOP_RECORD
from tasks.site.settings import SITE
from tests.mounting import sha
from tests.sites import REPO, Run, Site
from tests.test_converge_rewrite import set_flags

EXAMPLE = REPO / "config" / "example"
IMAGES = {"root", "local", "pkg", "swap", "xl"}


def up_to_date(stdout: str, tasks: int) -> bool:
    """The closing line of a build that ran nothing (its time is the machine's, not ours)."""
    return re.fullmatch(rf"0 built, {tasks} up to date in \d+\.\d s\n", stdout) is not None


def domus(site: Site, *args: str, script: bool = False) -> Run:
    command = [str(REPO / "domus")] if script else [sys.executable, "-m", "tasks.cli"]
    done = subprocess.run(
        [*command, *args, f"config={site.path}"], capture_output=True, text=True, cwd=REPO
    )
    return Run(done.returncode, done.stdout, done.stderr)


def status(site: Site, *names: str) -> dict[tuple[str | None, str], dict]:
    run = domus(site, "status", "--json", *names)
    assert run.returncode == 0, run.stdout + run.stderr
    answer = json.loads(run.stdout)
    assert answer["site"] == str(site.path)
    return {(item["domain"], item["image"]): item for item in answer["items"]}


def changed(items: dict[tuple[str | None, str], dict]) -> dict[tuple[str | None, str], str]:
    return {key: item["action"] for key, item in items.items() if item["action"] != "up to date"}


def built(tmp_path: Path) -> Site:
    """The example site over a copy of the example root tree, built by `./domus build`."""
    shutil.copytree(EXAMPLE / "root", tmp_path / "root", symlinks=True)
    site = Site(tmp_path / "site")
    site.data["root"]["source"]["tree"] = str(tmp_path / "root")
    site.save()
    run = domus(site, "build")
    assert run.returncode == 0, run.stdout + run.stderr
    return site


@pytest.fixture
def site(tmp_path) -> Site:
    return built(tmp_path)


def snapshot(top: Path) -> dict[str, tuple[int, int, int]]:
    found = {}
    for parent, dirs, files in os.walk(top):
        for name in dirs + files:
            st = os.lstat(os.path.join(parent, name))
            found[os.path.join(parent, name)] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return found


def record_taken(site: Site) -> int | None:
    """When the record of the last complete run was taken (None: there is none)."""
    path = site.output / NOOP_RECORD
    return json.loads(path.read_text())["taken_ns"] if path.exists() else None


def settle(site: Site) -> None:
    """A build with nothing to do. One right after a build that wrote images runs doit
    (their times are too close to the record's to trust) and records the run anew; after
    it, a build with nothing to do answers from the record."""
    run = domus(site, "build")
    assert (run.returncode, run.ran) == (0, set()), run.stdout + run.stderr


def test_after_a_build_every_image_and_xl_config_is_up_to_date(site):
    before = snapshot(site.output)
    items = status(site)
    domains = {None, "www1", "www2", "db1"}
    assert set(items) == {(None, "root")} | {
        (name, image) for name in domains - {None} for image in IMAGES - {"root"}
    }
    assert changed(items) == {}
    assert items[("www1", "local")]["path"] == str(site.image("www1", "local.img"))
    assert items[("db1", "xl")]["path"] == str(site.output / "xen" / "db1.cfg")
    # the same answer from the build records alone, when the record of the whole run is gone
    (site.output / NOOP_RECORD).unlink()
    assert changed(status(site)) == {}
    del before[str(site.output / NOOP_RECORD)]
    assert snapshot(site.output) == before
    table = domus(site, "status").stdout
    assert table.splitlines()[0].split() == ["DOMAIN", "IMAGE", "ACTION", "WHY"]
    assert table.splitlines()[-1] == "13 up to date"


def test_a_changed_key_is_named_with_its_old_and_new_values(site):
    site.data["domains"]["db1"]["rc_conf"]["defaultroute"] = "192.0.2.254"
    site.data["domains"]["www2"]["memory"] = "1g"
    site.save()
    items = status(site)
    assert changed(items) == {("db1", "local"): "converge", ("www2", "xl"): "build"}
    assert items[("db1", "local")]["why"] == [
        "rc_conf.defaultroute: 192.0.2.1 -> 192.0.2.254",
        "converged through debugfs, without mounting it",
    ]
    assert items[("www2", "xl")]["why"] == ["memory: 256 -> 1024"]
    # names select domUs; the shared root.img is shown with them
    assert set(status(site, "www2")) == {(None, "root")} | {("www2", i) for i in IMAGES - {"root"}}


def test_a_changed_template_is_named_and_every_local_image_converges(site):
    templates = site.directory / "templates" / "local" / "etc"
    templates.mkdir(parents=True)
    fstab = (REPO / "templates" / "local" / "etc" / "fstab").read_text()
    (templates / "fstab").write_text(fstab + "# changed\n")
    site.data["templates"] = "templates"
    site.save()
    items = status(site)
    assert {key for key in changed(items)} == {(n, "local") for n in ("www1", "www2", "db1")}
    # every local.img converges without a mount: ext2fs through debugfs, FFS by a rewrite
    assert {items[(n, "local")]["action"] for n in ("www1", "www2", "db1")} == {"converge"}
    for name in ("www1", "www2", "db1"):
        assert items[(name, "local")]["why"][0].startswith("template local/etc/fstab changed (now ")
    methods = {
        "www1": "by rewriting it whole",
        "www2": "by rewriting it whole",
        "db1": "through debugfs",
    }
    for name, method in methods.items():
        assert f"converged {method}" in "\n".join(items[(name, "local")]["why"])
    # the build does what status said
    run = domus(site, "build")
    assert run.ran == {f"local:{n}" for n in ("www1", "www2", "db1")}
    assert run.returncode == 0, run.stdout + run.stderr
    assert changed(status(site)) == {}


def test_a_local_image_that_cannot_be_converged_is_refused_saying_why(site):
    site.data["domains"]["db1"]["local"]["size"] = "16m"
    site.save()
    item = status(site)[("db1", "local")]
    assert item["action"] == "refuse"
    assert item["why"] == [
        "local.size: 33554432 -> 16777216",
        "cannot be converged here: it is 32m but local.size is 16m: an image is never "
        "shrunk (the domU's files may lie anywhere in it) (set local.size back to 32m or "
        "more; or `./domus reprovision db1` to make it at the new size (the old image is kept "
        "as a dated backup))",
    ]
    run = domus(site, "build")
    assert run.returncode == 1 and "FAILED   local:db1" in run.stdout


def test_an_immutable_managed_file_is_a_refusal_naming_it_and_the_flag(site):
    """Read without a lock or a mount: the FFS image by domus's reader, ext2fs by debugfs."""
    ffs, ext2 = site.image("www1", "local.img"), site.image("db1", "local.img")
    set_flags(ffs, b"etc/rc.conf", 0x00020000)  # chflags schg
    subprocess.run(
        ["debugfs", "-w", "-R", "set_inode_field /etc/rc.conf flags 0x10", str(ext2)],
        check=True,
        capture_output=True,
    )
    for name in ("www1", "db1"):
        site.data["domains"][name]["rc_conf"]["httpd"] = "NO"
    site.save()
    before = [sha(ffs), sha(ext2)]
    items = status(site)
    for name, flag in (("www1", "schg"), ("db1", "uchg")):
        item = items[(name, "local")]
        assert item["action"] == "refuse"
        assert f"/etc/rc.conf is flagged {flag}. NetBSD refuses" in item["why"][-1]
        assert f"chflags no{flag} /etc/rc.conf" in item["why"][-1]
    assert [sha(ffs), sha(ext2)] == before
    run = domus(site, "build")
    assert run.returncode == 1 and "FAILED   local:www1" in run.stdout
    assert [sha(ffs), sha(ext2)] == before


def test_a_changed_root_source_is_a_new_generation_naming_the_entries(site, tmp_path):
    root = tmp_path / "root"
    (root / "etc" / "motd").write_text("a new motd\n")
    (root / "etc" / "rc.d" / "gone").write_text("")
    (root / "usr" / "bin" / "gone").write_text("")
    time.sleep(0.01)
    items = status(site)
    assert changed(items) == {(None, "root"): "new generation"}
    (why,) = items[(None, "root")]["why"]
    assert why == (
        f"source tree {root}: 2 added (etc/rc.d/gone, usr/bin/gone), "
        "3 changed (etc/motd, etc/rc.d, usr/bin)"
    )


def test_moved_inputs_are_judged_by_their_copies(site, tmp_path):
    """What `deploy --check` runs on a dom0: the new site names a copy of the inputs, and
    each input is compared with the one the images were built from, not by where it is."""
    templates = site.directory / "templates" / "local" / "etc"
    templates.mkdir(parents=True)
    (templates / "motd").write_text("built\n")
    site.data["templates"] = "templates"
    site.save()
    assert domus(site, "build").returncode == 0
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "root", copy / "root", symlinks=True)
    shutil.copytree(site.directory / "templates", copy / "templates")
    data = {**site.data, "output": str(site.output), "templates": str(copy / "templates")}
    source = {**data["root"]["source"], "tree": str(copy / "root")}
    data["root"] = {**data["root"], "source": source}
    # the packages too, which pkg.img's configuration names
    packages = EXAMPLE / "packages"
    shutil.copytree(packages, copy / "packages")
    data = json.loads(json.dumps(data).replace(str(packages), str(copy / "packages")))
    checked = Site(tmp_path / "checked", data)
    moved = [
        f"--moved={tmp_path / 'root'}={copy / 'root'}",
        f"--moved={site.directory / 'templates'}={copy / 'templates'}",
        f"--moved={packages}={copy / 'packages'}",
    ]
    # the files: reading an image makes a scratch directory beside it, and removes it
    before = {path: st for path, st in snapshot(site.output).items() if not os.path.isdir(path)}

    def judged(*args: str) -> dict[tuple[str | None, str], str]:
        run = domus(checked, "status", "--json", *args)
        assert run.returncode == 0, run.stdout + run.stderr
        return changed({(i["domain"], i["image"]): i for i in json.loads(run.stdout)["items"]})

    assert judged(*moved) == {}
    # without --moved, a copy elsewhere is a change
    assert judged()[(None, "root")] == "new generation"
    (copy / "templates" / "local" / "etc" / "motd").write_text("checked\n")
    assert judged(*moved) == {(name, "local"): "converge" for name in ("www1", "www2", "db1")}
    assert {p: st for p, st in snapshot(site.output).items() if not os.path.isdir(p)} == before
    assert domus(checked, "status", "--moved=here").returncode == 2


def test_status_writes_nothing_and_answers_while_a_run_holds_the_lock(site):
    site.data["domains"]["www1"]["memory"] = "1g"
    site.save()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from tasks.run.locks import hold_run_lock; "
            "hold_run_lock(Path(sys.argv[1])); print('held', flush=True); sys.stdin.read()",
            str(site.output / "locks"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert holder.stdout.readline() == "held\n"
        before = snapshot(site.output)
        assert changed(status(site)) == {("www1", "xl"): "build"}
        assert domus(site, "status").returncode == 0
        assert snapshot(site.output) == before
        assert domus(site, "build").returncode == 75
        site.data["domains"]["www1"]["memory"] = "256m"  # back as built: status's shortcut
        site.save()
        assert changed(status(site)) == {}
        assert domus(site, "build").returncode == 75  # no shortcut past a held lock
    finally:
        holder.stdin.close()
        holder.wait()


def test_a_site_never_built_is_all_to_build(tmp_path):
    site = Site(tmp_path / "site")
    items = status(site)
    assert set(changed(items).values()) == {"build"}
    assert len(items) == 13
    assert not site.output.exists()


# What a no-op build loads: the record's checks only, neither the site nor doit.
MODULES_AFTER = """
import atexit, sys
atexit.register(lambda: print("modules:", *sorted(sys.modules), file=sys.stderr))
from tasks.cli import main
sys.exit(main())
"""


def test_a_noop_build_loads_neither_the_site_nor_doit(site):
    settle(site)
    done = subprocess.run(
        [sys.executable, "-c", MODULES_AFTER, "build", f"config={site.path}"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert up_to_date(done.stdout, 13)
    modules = done.stderr.rpartition("modules:")[2].split()
    assert [m for m in modules if m.startswith(("doit", "yaml", "jinja2", "tasks.site"))] == []
    # the ./domus script: the same answer
    run = domus(site, "build", script=True)
    assert run.returncode == 0 and up_to_date(run.stdout, 13)


def site_templates(site: Site) -> Path:
    """The site's own copy of the xl template, as the built-in one."""
    templates = site.directory / "templates" / "xen"
    templates.mkdir(parents=True)
    shutil.copyfile(REPO / "templates" / "xen" / "domu.cfg", templates / "domu.cfg")
    site.data["templates"] = "templates"
    site.save()
    assert domus(site, "build").returncode == 0
    return templates / "domu.cfg"


def change_template(site: Site) -> None:
    with open(site.directory / "templates" / "xen" / "domu.cfg", "a") as template:
        template.write("# changed\n")


def add_template(site: Site) -> None:
    added = site.directory / "templates" / "root" / "etc" / "motd.local"
    added.parent.mkdir(parents=True)
    added.write_text("{{ kernel }}\n")


def change_key(site: Site) -> None:
    site.data["domains"]["www1"]["memory"] = "512m"
    site.save()


def touch_image(site: Site) -> None:
    os.utime(site.image("www2", "swap.img"), ns=(0, time.time_ns() + 10**9))


def remove_image(site: Site) -> None:
    site.image("www2", "swap.img").unlink()


def change_source(site: Site) -> None:
    motd = Path(site.data["root"]["source"]["tree"]) / "etc" / "motd"
    motd.write_text(motd.read_text() + "changed\n")


def change_package(site: Site) -> None:
    # a package added beside the named ones may be a dependency pkg_add takes from there
    package = Path(site.data["defaults"]["pkg"]["source"]["packages"][0])
    copy = site.directory / "packages" / package.name
    copy.parent.mkdir()
    shutil.copyfile(package, copy)
    site.data["defaults"]["pkg"]["source"]["packages"] = [str(copy)]
    site.save()
    (copy.parent / "other-1.0.tgz").write_bytes(b"")


@pytest.mark.parametrize(
    ("change", "ran"),
    [
        (change_template, {"xen:www1", "xen:www2", "xen:db1"}),
        (add_template, {"root"}),
        (change_key, {"xen:www1"}),
        (touch_image, set()),  # doit, not the record, says that this changes nothing
        (remove_image, {"swap:www2"}),
        (change_source, {"root"}),
    ],
)
def test_every_change_gets_past_the_noop_record_to_the_real_build(site, change, ran):
    site_templates(site)
    settle(site)
    assert up_to_date(domus(site, "build").stdout, 13)
    record = record_taken(site)
    change(site)
    run = domus(site, "build")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.ran == ran
    assert record_taken(site) not in (None, record)  # doit ran, and recorded the run anew
    settle(site)
    assert up_to_date(domus(site, "build").stdout, 13)


def test_a_package_added_beside_the_named_ones_gets_past_the_record(tmp_path):
    site = built(tmp_path)
    change_package(site)  # the site file changes here too: build again to record it
    assert domus(site, "build").returncode == 0
    settle(site)
    assert up_to_date(domus(site, "build").stdout, 13)
    record = record_taken(site)
    (site.directory / "packages" / "other-2.0.tgz").write_bytes(b"")
    domus(site, "build")
    assert record_taken(site) not in (None, record)


def test_a_changed_kernel_is_a_new_root_generation_and_rewrites_every_xl_config(tmp_path):
    kernel = tmp_path / "netbsd-XEN3_DOMU"
    shutil.copyfile(EXAMPLE / "netbsd-XEN3_DOMU", kernel)
    site = Site(tmp_path / "site")
    site.data["root"]["kernel"] = str(kernel)
    site.save()
    assert domus(site, "build").returncode == 0
    with open(kernel, "ab") as f:
        f.write(b"\0")
    items = status(site)
    assert changed(items) == {
        (None, "root"): "new generation",
        **{(name, "xl"): "build" for name in ("www1", "www2", "db1")},
    }
    assert items[(None, "root")]["why"] == ["kernel changed"]
    run = domus(site, "build")
    assert run.ran == {"root", "xen:www1", "xen:www2", "xen:db1"}, run.stdout + run.stderr


def test_an_encrypted_local_image_converges_and_its_hotplug_script_is_shown(tmp_path):
    site = Site(tmp_path / "site")
    site.data["domains"]["db1"]["local"]["encrypt"] = "dom0"  # ext2fs, sealed by domus's cgd
    site.save()
    assert domus(site, "build").returncode == 0
    settle(site)
    assert up_to_date(domus(site, "build").stdout, 14)
    items = status(site)
    assert changed(items) == {}
    assert items[(None, "hotplug")]["path"] == str(site.output / "xen" / "block-domus-cgd")
    site.data["domains"]["db1"]["rc_conf"]["sshd"] = "NO"
    site.save()
    items = status(site)
    assert changed(items) == {("db1", "local"): "converge"}
    assert items[("db1", "local")]["why"] == [
        "rc_conf.sshd: YES -> NO",
        "converged on a plaintext copy domus decrypts and seals again, without mounting it",
    ]
    run = domus(site, "build")
    assert run.ran == {"local:db1"}, run.stdout + run.stderr
    assert changed(status(site)) == {}


def test_the_record_is_found_from_the_output_line_alone(tmp_path):
    site = tmp_path / "site.yaml"
    assert SITE.settings["output"].default == noop.DEFAULT_OUTPUT
    assert noop.output_of(site, b"root: {}\n") == tmp_path / "build"
    assert noop.output_of(site, b"a: 1\noutput: ../out  # here\n") == tmp_path.parent / "out"
    assert noop.output_of(site, b"output: /srv/domus\n") == Path("/srv/domus")
    # anything else is left to the site's reader, and the run to doit
    assert noop.output_of(site, b"output: 'quoted'\n") is None
    assert noop.output_of(site, b"output: *alias\n") is None
    assert noop.output_of(site, b"output: a\noutput: b\n") is None


def test_a_file_written_just_before_the_record_is_left_to_doit(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_bytes(b"output: out\n")
    (tmp_path / "out").mkdir()
    image = tmp_path / "out" / "image"
    image.write_bytes(b"")

    def recorded() -> dict | None:
        noop.write(site, tmp_path / "out", tmp_path / "run.lock", [str(image)], {}, [], 1)
        return noop.unchanged(site)

    # written in the clock tick the record is taken in, it could change again unseen
    assert recorded() is None
    os.utime(image, ns=(0, time.time_ns() - 10**9))
    assert recorded() is not None
    image.write_bytes(b"changed")
    os.utime(image, ns=(0, time.time_ns() - 10**9))
    assert noop.unchanged(site) is None
