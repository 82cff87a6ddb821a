"""Generations of root.img and pkg.img: kept, reused, activated, rolled back, pinned, collected."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tasks import xl
from tasks.generations.running import in_use
from tasks.generations.slots import ROOT
from tasks.generations.state import SlotState, save_state
from tasks.generations.store import Store
from tasks.run.errors import DomusError
from tasks.site import Layout
from tasks.xl import Domain, find_xl, no_hypervisor_here, running_domains
from tests.commands import (
    active,
    change_root_template,
    domus,
    fake_xl,
    generations,
    slot_state,
    xl_domain,
)
from tests.image_reader import ImageReader
from tests.sites import REPO, Site


@pytest.fixture
def site(tmp_path) -> Site:
    site = Site(tmp_path / "site")
    site.build()
    return site


def test_root_img_and_kernel_lead_to_one_complete_generation(site):
    (first,) = generations(site, "root")
    generation = site.image("generations", "root", first)
    assert site.image("root.img").is_symlink()
    assert site.image("root.img").resolve() == generation / "root.img"
    assert site.image("netbsd-XEN3_DOMU").resolve() == generation / "kernel"
    record = json.loads((generation / "generation.json").read_text())
    assert record["id"] == first
    assert record["size"] == 16 << 20
    assert "file kernel" in record["inputs"]
    assert any(key.startswith("tree ") for key in record["inputs"])
    assert ImageReader(site.image("root.img"), "ffs").text("etc/rc.pre-hooks")
    # the xl configs name the stable paths, so activation rewrites none of them
    config = (site.output / "xen" / "www1.cfg").read_text()
    assert f"target={site.image('root.img')}" in config
    assert f'kernel = "{site.image("netbsd-XEN3_DOMU")}"' in config


def test_rollback_restores_the_previous_bytes_and_running_domus_keep_theirs(site):
    first = active(site)
    old_bytes = site.image("root.img").read_bytes()
    with open(site.image("root.img"), "rb") as running_old:  # a domU started before
        change_root_template(site, "# second generation\n")
        assert site.build().ran == {"root"}
        second = active(site)
        assert second != first
        new_bytes = site.image("root.img").read_bytes()
        assert new_bytes != old_bytes
        with open(site.image("root.img"), "rb") as running_new:
            start = time.monotonic()
            run = domus(site, "rollback", "root")
            elapsed = time.monotonic() - start
            assert run.returncode == 0, run.stderr
            assert f"root: generation {first} active, was {second}" in run.stdout
            assert elapsed < 5
            assert active(site) == first
            assert site.image("root.img").read_bytes() == old_bytes  # what a domU booting gets
            assert site.image("netbsd-XEN3_DOMU").resolve().parent.name == first
            assert running_old.read() == old_bytes
            assert running_new.read() == new_bytes
    assert generations(site, "root") == {first, second}  # nothing was rebuilt or removed
    assert site.build().ran == set()  # the rollback holds: the inputs did not change
    assert active(site) == first


def test_repeated_rollbacks_go_further_back_and_stop_at_the_first(site):
    ids = [active(site)]
    for text in ("# two\n", "# three\n"):
        change_root_template(site, text)
        site.build()
        ids.append(active(site))
    assert domus(site, "rollback", "root").returncode == 0
    assert active(site) == ids[1]
    assert domus(site, "rollback", "root").returncode == 0
    assert active(site) == ids[0]
    run = domus(site, "rollback", "root")
    assert run.returncode == 1
    assert "root: no earlier generation to go back to" in run.stderr
    assert active(site) == ids[0]


def test_inputs_of_an_older_generation_reuse_it(site):
    first = active(site)
    change_root_template(site, "# second\n")
    site.build()
    second = active(site)
    change_root_template(site, "")  # the site copy now equals the built-in template...
    site.data["templates"] = None  # ...and goes: the inputs are the first build's again
    site.save()
    run = site.build()
    assert run.ran == {"root"}
    assert f"root: generation {first} reused (same inputs); active, was {second}" in run.stderr
    assert active(site) == first
    assert generations(site, "root") == {first, second}


def test_domus_with_the_same_packages_share_one_pkg_generation(site):
    site.data["domains"]["www3"] = {}  # inherits the default packages, as www2 does
    site.save()
    run = site.build()
    assert "pkg:www3" in run.ran
    assert "reused (same inputs)" in run.stderr
    assert active(site, "pkg.www3") == active(site, "pkg.www2")
    assert site.image("www3", "pkg.img").read_bytes() == site.image("www2", "pkg.img").read_bytes()
    assert len(generations(site, "pkg")) == 3  # www1's, the shared one, db1's empty one


def test_pkg_rollback_of_one_domu_leaves_the_others(site, tmp_path):
    site.data["domains"]["www1"]["pkg"]["size"] = "16m"
    site.save()
    before = {name: active(site, f"pkg.{name}") for name in ("www2", "db1")}
    www1_old = active(site, "pkg.www1")
    site.build()
    www1_new = active(site, "pkg.www1")
    assert www1_new != www1_old
    assert site.image("www1", "pkg.img").stat().st_size == 16 << 20
    run = domus(site, "rollback", "pkg:www1")
    assert run.returncode == 0, run.stderr
    assert active(site, "pkg.www1") == www1_old
    assert site.image("www1", "pkg.img").stat().st_size == 8 << 20
    assert {name: active(site, f"pkg.{name}") for name in ("www2", "db1")} == before


def test_a_pinned_image_is_built_but_not_moved(site):
    first = active(site)
    run = domus(site, "pin", "root")
    assert run.returncode == 0
    assert f"root: pinned to {first}" in run.stdout
    change_root_template(site, "# while pinned\n")
    run = site.build()
    assert run.ran == {"root"}
    assert "not activated: root is pinned" in run.stderr
    assert active(site) == first
    (newer,) = generations(site, "root") - {first}
    run = domus(site, "unpin", "root")
    assert f"the newest build is {newer}: `./domus activate root {newer}`" in run.stdout
    assert active(site) == first
    run = domus(site, "activate", "root", newer[:6])
    assert run.returncode == 0, run.stderr
    assert active(site) == newer


def test_activate_needs_a_generation_that_exists(tmp_path):
    site = Site(tmp_path / "site")  # nothing built yet
    run = domus(site, "activate", "root", "ffffffff")
    assert run.returncode == 1
    assert "no root generations start with 'ffffffff'" in run.stderr
    run = domus(site, "rollback", "pkg:nosuch")
    assert run.returncode == 2
    assert "no domain named nosuch" in run.stderr
    run = domus(site, "rollback", "root")
    assert run.returncode == 1
    assert "root: nothing is active yet" in run.stderr
    run = domus(site, "generations")
    assert run.returncode == 0
    assert run.stdout.splitlines()[0] == "root: no generations yet"


def test_list_marks_the_active_generation_and_what_changed(site):
    first = active(site)
    change_root_template(site, "# listed\n")
    site.build()
    second = active(site)
    run = domus(site, "generations", "root")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "root:"
    assert lines[1].startswith(f"  * {second}")
    assert "changed: file template" in lines[1]
    assert lines[2].startswith(f"    {first}") and lines[2].endswith("first")


def test_list_names_the_running_domus_of_each_generation(site, tmp_path):
    first = active(site)
    change_root_template(site, "# second\n")
    site.build()
    second = active(site)
    state = slot_state(site)
    state["log"] = [[first, time.time() - 3600], [second, time.time() - 1800]]
    site.image("generations", "slots", "root.json").write_text(json.dumps(state))
    old = site.image("generations", "root", first, "root.img")
    env = fake_xl(
        tmp_path / "xl",
        [xl_domain("www1", old), xl_domain("www2", site.image("root.img"))],
        {"www1": 7200, "www2": 0},
    )
    run = domus(site, "generations", "root", env=env)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[1].startswith(f"  * {second}") and lines[1].endswith("[used by www2]")
    assert lines[2].startswith(f"    {first}") and lines[2].endswith("[used by www1]")


def test_gc_never_removes_active_pinned_or_running_generations(site, tmp_path):
    site.data["generations"] = {"keep": 1}
    site.save()
    ids = [active(site)]
    for text in ("# 2\n", "# 3\n", "# 4\n"):
        change_root_template(site, text)
        site.build()
        ids.append(active(site))
    assert domus(site, "activate", "root", ids[1]).returncode == 0  # active: ids[1]
    www1_pkg = active(site, "pkg.www1")
    site.data["domains"]["www1"]["pkg"]["size"] = "16m"
    site.save()
    site.build()
    assert domus(site, "rollback", "pkg:www1").returncode == 0
    assert domus(site, "pin", "pkg:www1").returncode == 0  # pinned to the older one
    running = site.image("generations", "root", ids[0], "root.img")
    env = fake_xl(tmp_path / "xl", [xl_domain("www1", running)], {"www1": 60})

    run = domus(site, "gc", env=env)
    assert run.returncode == 0, run.stderr
    assert generations(site, "root") == {ids[0], ids[1], ids[3]}  # running, active, newest
    assert www1_pkg in generations(site, "pkg")
    assert active(site) == ids[1] and active(site, "pkg.www1") == www1_pkg
    assert site.image("root.img").read_bytes()
    assert slot_state(site)["built"] == [ids[0], ids[1], ids[3]]


def test_gc_without_xl_keeps_the_newest_and_the_active(site):
    site.data["generations"] = {"keep": 2}
    site.save()
    ids = [active(site)]
    for text in ("# 2\n", "# 3\n"):
        change_root_template(site, text)
        site.build()
        ids.append(active(site))
    run = domus(site, "gc")
    assert run.returncode == 0, run.stderr
    assert "removed 1 generation (" in run.stdout
    assert f"removed root generation {ids[0]}, built " in run.stdout
    assert generations(site, "root") == set(ids[1:])
    assert not list(site.image("generations", "root").glob(".*"))


def test_gc_stops_when_xl_cannot_say_what_runs(site, tmp_path):
    change_root_template(site, "# 2\n")
    site.build()
    site.data["generations"] = {"keep": 1}
    site.save()
    xl = tmp_path / "xl"
    xl.mkdir()
    (xl / "xl").write_text("#!/bin/sh\necho 'xl: permission denied' >&2\nexit 1\n")
    (xl / "xl").chmod(0o755)
    run = domus(site, "gc", env={"PATH": f"{xl}:{os.environ['PATH']}"})
    assert run.returncode == 1
    assert "`xl list -l` failed (exit 1): xl: permission denied" in run.stderr
    assert len(generations(site, "root")) == 2


# What xl prints on a host without a hypervisor: Debian's wrapper (/usr/sbin/xl), and the
# xl binary itself, whose xencall finds no privcmd device (Linux and NetBSD alike).
NO_HYPERVISOR_XL = {
    "debian-wrapper": "ERROR:  Can't find hypervisor information in sysfs!",
    "xencall": "xencall: error: Could not obtain handle on privileged command interface: "
    "No such file or directory\nlibxl: error: libxl.c:102:libxl_ctx_alloc: cannot open libxc "
    "handle: No such file or directory\ncannot init xl context",
}
needs_no_hypervisor = pytest.mark.skipif(
    not no_hypervisor_here(), reason="this host runs on Xen: domUs may run here"
)


def failing_xl(directory, message: str) -> dict[str, str]:
    """An `xl` that fails as xl does on a host without a hypervisor; the PATH to use it."""
    directory.mkdir()
    (directory / "xl").write_text(f"#!/bin/sh\ncat >&2 <<'EOF'\n{message}\nEOF\nexit 1\n")
    (directory / "xl").chmod(0o755)
    return {"PATH": f"{directory}:{os.environ['PATH']}"}


def two_generations_keep_one(site) -> None:
    change_root_template(site, "# 2\n")
    site.build()
    site.data["generations"] = {"keep": 1}
    site.save()


@needs_no_hypervisor
@pytest.mark.parametrize("message", NO_HYPERVISOR_XL.values(), ids=NO_HYPERVISOR_XL.keys())
def test_gc_where_xl_finds_no_hypervisor_collects_as_if_nothing_runs(site, tmp_path, message):
    two_generations_keep_one(site)
    run = domus(site, "gc", env=failing_xl(tmp_path / "xl", message))
    assert run.returncode == 0, run.stderr
    assert "removed 1 generation (" in run.stdout
    assert generations(site, "root") == {active(site)}


@needs_no_hypervisor
@pytest.mark.skipif(find_xl() is None, reason="xl is not installed (Debian: xen-utils)")
def test_gc_with_the_real_xl_on_a_host_without_hypervisor(site):
    two_generations_keep_one(site)
    run = domus(site, "gc")
    assert run.returncode == 0, run.stderr
    assert "removed 1 generation (" in run.stdout


def test_xl_saying_no_hypervisor_on_a_xen_host_still_stops(tmp_path, monkeypatch):
    # the message alone is not enough: this system must show no Xen either
    xen = tmp_path / "type"
    xen.write_text("xen\n")
    monkeypatch.setattr(xl.sys, "platform", "linux")
    monkeypatch.setattr(xl, "HYPERVISOR_TYPE", xen)
    monkeypatch.setenv("PATH", failing_xl(tmp_path / "xl", NO_HYPERVISOR_XL["xencall"])["PATH"])
    with pytest.raises(DomusError, match=r"(?s)`xl list -l` failed .*cannot init xl context"):
        running_domains()
    xen.write_text("kvm\n")
    assert running_domains() == []


def test_on_netbsd_no_privcmd_means_no_hypervisor(tmp_path, monkeypatch):
    privcmd = tmp_path / "privcmd"
    monkeypatch.setattr(xl.sys, "platform", "netbsd10")
    monkeypatch.setattr(xl, "PRIVCMD", privcmd)
    monkeypatch.setenv("PATH", failing_xl(tmp_path / "xl", NO_HYPERVISOR_XL["xencall"])["PATH"])
    assert running_domains() == []
    privcmd.touch()
    with pytest.raises(DomusError, match="Could not obtain handle"):
        running_domains()


def test_which_generation_a_domu_booted_from_its_start_time(tmp_path):
    layout = Layout(tmp_path / "out", tmp_path / "out" / "locks")
    store = Store(layout)
    state = SlotState(stack=["a", "b"], log=[("a", 1000.0), ("b", 2000.0)], built=["a", "b"])
    save_state(store.state_path(ROOT), state)

    def used(started):
        return in_use(store, [Domain("www1", started, (str(layout.root_image),))], [ROOT])

    assert used(1500.0) == {("root", "a"): {"www1"}}
    assert used(2500.0) == {("root", "b"): {"www1"}}
    assert used(2001.0) == {("root", "a"): {"www1"}, ("root", "b"): {"www1"}}  # too close
    assert used(None) == {("root", "a"): {"www1"}, ("root", "b"): {"www1"}}
    assert used(500.0) == {}  # booted before domus made any generation
    elsewhere = Domain("other", 1500.0, ("/srv/other.img",))
    assert in_use(store, [elsewhere], [ROOT]) == {}


def test_generations_are_listed_by_date_after_a_reuse_and_activating_the_active_one_says_so(
    site,
):
    first = active(site)
    change_root_template(site, "# second\n")
    site.build()
    second = active(site)
    change_root_template(site, "")
    site.data["templates"] = None  # the first build's inputs again: reused, active
    site.save()
    site.build()
    listed = domus(site, "generations", "root").stdout
    assert listed.index(second) < listed.index(first), listed  # newest first
    run = domus(site, "activate", "root", first)
    assert run.returncode == 0, run.stderr
    assert run.stdout == f"root: generation {first} is active already\n"
    assert f"was {first}" not in run.stdout


def test_diff_after_a_rollback_compares_with_the_generation_rolled_back_from(site):
    first = active(site)
    change_root_template(site, "# second\n")
    site.build()
    second = active(site)
    assert domus(site, "rollback", "root").returncode == 0
    done = subprocess.run(
        [sys.executable, "-m", "tasks.cli", "diff", "root", f"config={site.path}"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert "no generation was active before" not in done.stderr
    assert second in done.stdout and first in done.stdout, done.stdout


@pytest.fixture
def tmpfs(tmp_path):
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_root_tree_copied_to_another_file_system_names_the_same_generation(tmp_path, tmpfs):
    # ext4 gives a directory 4096 bytes, tmpfs a size from its entries: a dom0 on another
    # file system must find the generation shipped to it, not build its own
    site = Site(tmp_path / "site")
    source = Path(site.data["root"]["source"]["tree"])
    copies = [tmp_path / "ext4" / "root", tmpfs / "root"]
    for copy in copies:
        copy.parent.mkdir(exist_ok=True)
        subprocess.run(["cp", "-a", str(source), str(copy)], check=True)
    sizes = {copy: os.lstat(copy / "etc").st_size for copy in copies}
    assert len(set(sizes.values())) == 2, sizes
    site.data["root"]["source"]["tree"] = str(copies[0])
    site.save()
    site.build()
    (first,) = generations(site, "root")
    site.data["root"]["source"]["tree"] = str(copies[1])
    site.save()
    run = site.build()
    assert f"root: generation {first} reused (same inputs)" in run.stdout + run.stderr
    assert generations(site, "root") == {first}
    # what names it is the content: a changed file is a new generation
    (copies[1] / "etc" / "motd").write_text("another motd\n")
    site.build()
    assert len(generations(site, "root")) == 2
