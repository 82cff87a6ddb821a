"""Converging local images in place, as root with real loop devices and mounts.

Every test plants and checks files through its own losetup and mount (tests/mounting.py),
and asserts that nothing stays attached or mounted afterwards.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tasks.recipes.managed_record import RECORD
from tests.conftest import REPO
from tests.image_reader import ImageReader
from tests.mounting import (
    fsck_clean,
    loop_mounted,
    loops_under,
    mounts_under,
    needs_root,
    release_everything_under,
    sha,
    snapshot,
)
from tests.netbsd_rules import assert_netbsd_accepts
from tests.sites import Run, Site
from tests.unprivileged import NOBODY

pytestmark = needs_root

OLD_MTIME = 1_000_000_000_123_456_789  # 2001-09-09, to the nanosecond the file system keeps
SITE_LINE = "# a line the site's own fstab template adds\n"


def ext2_site(
    directory: Path,
    names: tuple[str, ...] = ("www1", "www2", "db1"),
    data: dict | None = None,
    mount: bool = False,
    **blockdev: object,
) -> Site:
    """The example site with ext2fs local images, built; `mount`: converge.mount, so that
    a converge as root mounts them."""
    site = Site(directory, data)
    if mount:
        site.data["converge"] = {"mount": True}
    site.data["defaults"]["local"] = {"size": "16m", "fs": "ext2fs"}
    for name in names:
        entry = site.data["domains"].setdefault(name, {}) or {}
        entry.pop("local", None)
        site.data["domains"][name] = entry
    for name in [n for n in site.data["domains"] if n not in names]:
        del site.data["domains"][name]
    if blockdev:
        site.data["blockdev"] = dict(blockdev)
    site.save()
    site.build()
    return site


@pytest.fixture(autouse=True)
def nothing_left_behind(tmp_path):
    yield
    release_everything_under(tmp_path)


@pytest.fixture
def site(tmp_path) -> Site:
    return ext2_site(tmp_path / "site", mount=True)


def plant_domu_state(top: Path) -> None:
    """What a domU's administrator leaves in its local.img."""
    (top / "var" / "db" / "app").mkdir(parents=True)
    data = top / "var" / "db" / "app" / "data"
    data.write_bytes(bytes(range(256)) * 64)
    os.chown(data, 1001, 1002)
    os.chmod(data, 0o640)
    key = top / "etc" / "ssh_host_ed25519_key"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nnot really\n")
    os.chmod(key, 0o600)
    (top / "var" / "log").mkdir(exist_ok=True)
    (top / "var" / "log" / "messages").write_text("Jan  1 00:00:00 www1 syslogd: restart\n")
    os.symlink("messages", top / "var" / "log" / "latest")
    rc_conf = top / "etc" / "rc.conf"
    rc_conf.write_text(rc_conf.read_text() + "# added by the domU's admin\nnamed=YES\n")
    os.chown(rc_conf, 0, 5)
    os.chmod(rc_conf, 0o640)
    for path in (data, key, rc_conf, top / "etc" / "passwd", top / "etc" / "fstab"):
        os.utime(path, ns=(OLD_MTIME, OLD_MTIME))


def change_site(site: Site, name: str) -> Path:
    """An rc.conf variable of `name`, and a site fstab template for every domU."""
    site.data["domains"][name].setdefault("rc_conf", {})["httpd"] = "NO"
    templates = site.directory / "templates"
    (templates / "local" / "etc").mkdir(parents=True, exist_ok=True)
    fstab = (REPO / "templates" / "local" / "etc" / "fstab").read_text()
    (templates / "local" / "etc" / "fstab").write_text(fstab + SITE_LINE)
    (templates / "local" / "etc" / "motd.domus").write_text("managed by domus: {{ name }}\n")
    site.data["templates"] = "templates"
    site.save()
    return templates


def assert_nothing_attached(site: Site) -> None:
    assert loops_under(site.directory) == []
    assert mounts_under(site.directory) == []
    assert list((site.output / "locks" / "attachments").glob("*.json")) == []


def check_converged_in_place(site: Site, name: str, before: dict) -> None:
    image = site.image(name, "local.img")
    with loop_mounted(image, readonly=True) as top:
        after = snapshot(top)
        rc_conf = (top / "etc" / "rc.conf").read_text()
        fstab = (top / "etc" / "fstab").read_text()
    managed = {"etc/rc.conf", "etc/fstab", RECORD}  # the record names the new motd.domus
    backups = {path for path in after if ".domus-" in path}
    assert {path.split(".domus-")[0] for path in backups} == managed
    for backup in backups:
        # the old file itself: content, owner, mode and mtime
        assert after[backup] == before[backup.split(".domus-")[0]], backup
    for path, meta in before.items():
        if path not in managed:
            assert after[path] == meta, path
    assert set(after) == set(before) | backups | {"etc/motd.domus"}
    assert "httpd=NO\n" in rc_conf and "httpd=YES" not in rc_conf
    assert rc_conf.endswith("# added by the domU's admin\nnamed=YES\n")
    assert (after["etc/rc.conf"].uid, after["etc/rc.conf"].gid) == (0, 5)
    assert after["etc/rc.conf"].mode == 0o640
    assert fstab.endswith(SITE_LINE)
    assert (after["etc/fstab"].mode, after["etc/fstab"].uid) == (0o644, 0)
    assert (after["etc/motd.domus"].mode, after["etc/motd.domus"].uid) == (0o644, 0)
    assert fsck_clean(image)
    assert_netbsd_accepts(image, "ext2fs")


@pytest.mark.parametrize("backend", ["auto", "none"], ids=["mounted", "debugfs"])
def test_converge_rewrites_only_managed_files_and_keeps_backups(tmp_path, backend):
    site = ext2_site(tmp_path / "site", mount=backend != "none", backend=backend)
    image = site.image("www1", "local.img")
    with loop_mounted(image) as top:
        plant_domu_state(top)
        before = snapshot(top)
    change_site(site, "www1")
    run = site.build()
    assert run.ran == {"local:www1", "local:www2", "local:db1"}
    assert ("(mount)" if backend == "auto" else "(debugfs)") in run.stderr
    check_converged_in_place(site, "www1", before)
    assert_nothing_attached(site)
    assert site.build().ran == set()  # the new inputs are recorded


# (what `chattr` flags in the mounted image, the flag, what the refusal names)
LOCKS = {
    "immutable-file": ("etc/rc.conf", "+i", "/etc/rc.conf is flagged uchg"),
    "append-only-file": ("etc/rc.conf", "+a", "/etc/rc.conf is flagged uappnd"),
    "append-only-directory": ("etc", "+a", "/etc is flagged uappnd (holding /etc/"),
}


@pytest.mark.parametrize("lock", sorted(LOCKS))
@pytest.mark.parametrize("backend", ["auto", "none"], ids=["mounted", "debugfs"])
def test_an_immutable_or_append_only_managed_file_is_refused_before_anything_is_written(
    tmp_path, backend, lock
):
    site = ext2_site(tmp_path / "site", ("www1",), mount=backend != "none", backend=backend)
    image = site.image("www1", "local.img")
    path, flag, named = LOCKS[lock]
    with loop_mounted(image) as top:
        subprocess.run(["chattr", flag, str(top / path)], check=True)
    assert_flag_refused(
        site, image, named, f"chflags no{'uchg' if flag == '+i' else 'uappnd'} /{path}"
    )
    assert_nothing_attached(site)


def assert_flag_refused(site: Site, image: Path, named: str, hint: str) -> Run:
    """A change to www1's templates, converged over a file carrying a flag, is refused by the
    dry run and the build alike, naming the file and the chflags that clears it, with the
    image unchanged."""
    change_site(site, "www1")
    before = sha(image)
    dry = subprocess.run(
        [str(REPO / "domus"), "converge", "--dry-run", "www1", f"config={site.path}"],
        capture_output=True,
        text=True,
    )
    assert dry.returncode == 1 and named in dry.stderr, dry.stdout + dry.stderr
    run = site.doit()
    assert run.returncode != 0
    assert named in run.stdout and "nothing was changed" in run.stdout
    assert hint in run.stdout and "Traceback" not in run.stdout + run.stderr
    assert sha(image) == before
    return run


def test_a_mounted_converge_leaves_an_image_netbsds_fsck_ext2fs_accepts(site):
    """Linux writes s_last_mounted and s_kbytes_written on every mount: left there, they
    make fsck_ext2fs refuse the image at the domU's next boot."""
    image = site.image("db1", "local.img")
    assert_netbsd_accepts(image, "ext2fs")
    change_site(site, "db1")
    run = site.build()
    assert "local:db1" in run.ran and "(mount)" in run.stderr
    assert_netbsd_accepts(image, "ext2fs")


def test_an_image_left_unbootable_by_an_earlier_linux_mount_is_repaired_by_debugfs(tmp_path):
    site = ext2_site(tmp_path / "site", backend="none")
    image = site.image("www1", "local.img")
    device = subprocess.run(
        ["losetup", "--find", "--show", str(image)], check=True, capture_output=True, text=True
    ).stdout.strip()
    top = tmp_path / "mnt"
    top.mkdir()
    try:
        subprocess.run(["mount", "-t", "ext2", device, str(top)], check=True)
        (top / "etc" / "motd").write_text("written by Linux\n")
        subprocess.run(["umount", str(top)], check=True)
    finally:
        subprocess.run(["losetup", "-d", device], check=True)
    with pytest.raises(AssertionError, match="DISAGREE WITH THOSE IN FIRST ALTERNATE"):
        assert_netbsd_accepts(image, "ext2fs")
    change_site(site, "www1")
    assert "(debugfs)" in site.build().stderr
    assert_netbsd_accepts(image, "ext2fs")


def test_an_ext2fs_image_converges_without_root_through_debugfs(public_tmp, nobody):
    site = ext2_site(public_tmp / "site", data=nobody.example_site())
    image = site.image("www1", "local.img")
    with loop_mounted(image) as top:
        plant_domu_state(top)
        before = snapshot(top)
    change_site(site, "www1")
    subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", str(public_tmp)], check=True)
    done = nobody.doit(f"config={site.path}", home=public_tmp)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "(debugfs)" in done.stderr
    assert (image.stat().st_uid, image.stat().st_mode & 0o777) == (NOBODY, 0o600)  # private
    check_converged_in_place(site, "www1", before)
    assert_nothing_attached(site)


def test_dry_run_prints_the_exact_diff_and_touches_nothing(site):
    image = site.image("www2", "local.img")
    old = ImageReader(image, "ext2fs").text("etc/rc.conf")
    assert old.count("httpd=YES\n") == 1
    site.data["domains"]["www2"]["rc_conf"]["httpd"] = "NO"
    site.save()
    before = (sha(image), image.stat().st_mtime_ns)
    done = subprocess.run(
        [str(REPO / "domus"), "converge", "--dry-run", "www2", f"config={site.path}"],
        capture_output=True,
        text=True,
    )
    new = old.replace("httpd=YES\n", "httpd=NO\n")
    expected = "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            "www2:/etc/rc.conf\t(in the image)",
            "www2:/etc/rc.conf\t(converged)",
        )
    )
    assert done.stdout == expected, done.stderr
    assert "-httpd=YES\n+httpd=NO\n" in done.stdout
    assert done.returncode == 1
    assert (sha(image), image.stat().st_mtime_ns) == before
    assert_nothing_attached(site)
    again = subprocess.run(
        [str(REPO / "domus"), "converge", "--dry-run", "www1", f"config={site.path}"],
        capture_output=True,
        text=True,
    )
    assert (again.returncode, again.stdout) == (0, "")
    assert "already matches" in again.stderr


def test_converge_command_puts_back_a_managed_file_the_domu_changed(site):
    image = site.image("db1", "local.img")
    with loop_mounted(image) as top:
        fstab = top / "etc" / "fstab"
        original = fstab.read_text()
        fstab.write_text("# edited in the domU\n")
    done = subprocess.run(
        [str(REPO / "domus"), "converge", "db1", f"config={site.path}"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    with loop_mounted(image, readonly=True) as top:
        assert (top / "etc" / "fstab").read_text() == original
        backups = list((top / "etc").glob("fstab.domus-*"))
        assert [path.read_text() for path in backups] == ["# edited in the domU\n"]
    assert_netbsd_accepts(image, "ext2fs")
    assert site.build().ran == set()
    assert_nothing_attached(site)


def test_an_image_attached_by_someone_else_is_refused_by_name(site):
    image = site.image("www1", "local.img")
    site.data["domains"]["www1"]["rc_conf"]["httpd"] = "NO"
    site.save()
    before = sha(image)
    device = subprocess.run(
        ["losetup", "--find", "--show", str(image)], check=True, capture_output=True, text=True
    ).stdout.strip()
    try:
        run = site.doit()
        assert run.returncode != 0
        assert f"is in use: attached to {device}" in run.stdout
        assert sha(image) == before
    finally:
        subprocess.run(["losetup", "-d", device], check=True)
    assert_nothing_attached(site)
    assert site.build().ran == {"local:www1"}


def test_a_smaller_size_is_refused_and_a_larger_one_grows_the_image(site):
    image = site.image("www1", "local.img")
    before = sha(image)
    site.data["domains"]["www1"]["local"] = {"size": "12m"}
    site.save()
    run = site.doit()
    assert run.returncode != 0
    assert "it is 16m but local.size is 12m: an image is never shrunk" in run.stdout
    assert "hint: set local.size back to 16m or more; or `./domus reprovision www1`" in run.stdout
    assert "vnd mounts FFS" not in run.stdout
    assert sha(image) == before
    site.data["domains"]["www1"]["local"] = {"size": "24m"}
    site.save()
    run = site.build()
    assert "grew" in run.stderr and "(resize2fs)" in run.stderr
    assert image.stat().st_size == 24 << 20
    assert fsck_clean(image)
    assert_netbsd_accepts(image, "ext2fs")
    assert_nothing_attached(site)


def job(site_path: Path, name: str, log: Path, mode: str, seconds: float = 0) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.converge_job",
            str(site_path),
            name,
            str(log),
            mode,
            str(seconds),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def intervals(log: Path) -> list[tuple[float, float, str]]:
    return [tuple(json.loads(line)) for line in log.read_text().splitlines()]


def most_at_once(spans: list[tuple[float, float, str]]) -> int:
    events = sorted([(start, 1) for start, _, _ in spans] + [(end, -1) for _, end, _ in spans])
    most = current = 0
    for _, step in events:
        current += step
        most = max(most, current)
    return most


def test_two_converges_of_one_image_serialize(site, tmp_path):
    other = yaml.safe_load(site.path.read_text())
    other["output"] = str(site.output)
    site.data["domains"]["www1"]["rc_conf"]["httpd"] = "NO"
    site.save()
    other["domains"]["www1"]["rc_conf"]["httpd"] = "MAYBE"
    other_path = site.directory / "other.yaml"
    other_path.write_text(yaml.safe_dump(other, sort_keys=False))
    log = tmp_path / "spans"
    jobs = [job(site.path, "www1", log, "slow", 0.5), job(other_path, "www1", log, "slow", 0.5)]
    for process in jobs:
        _, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
    first, second = sorted(intervals(log))
    assert first[1] <= second[0]  # the second wrote only after the first had finished
    image = site.image("www1", "local.img")
    with loop_mounted(image, readonly=True) as top:
        assert len(list((top / "etc").glob("rc.conf.domus-*"))) == 2
    assert fsck_clean(image)
    assert_nothing_attached(site)


def test_six_jobs_on_a_pool_of_two_units_never_hold_more_than_two(tmp_path):
    names = tuple(f"web{number}" for number in range(1, 7))
    site = ext2_site(tmp_path / "site", names, mount=True, units=2)
    site.data["defaults"]["rc_conf"]["ntpd"] = "NO"
    site.save()
    log = tmp_path / "spans"
    seen: list[int] = []
    # long enough to overlap, after each job's e2fsck -fn, on a busy machine
    jobs = [job(site.path, name, log, "slow", 1.0) for name in names]
    while any(process.poll() is None for process in jobs):
        seen.append(len(loops_under(site.directory)))
        time.sleep(0.01)
    for process in jobs:
        assert process.returncode == 0, process.stderr.read()
    spans = intervals(log)
    assert len(spans) == 6
    assert most_at_once(spans) == 2
    assert {Path(top).name for _, _, top in spans} == {"loop-unit0", "loop-unit1"}
    assert max(seen) <= 2
    assert_nothing_attached(site)
    assert site.build().ran == {f"local:{name}" for name in names}  # doit's own record
    assert site.build().ran == set()


def stalled_job(site: Site, name: str, tmp_path: Path) -> subprocess.Popen:
    ready = tmp_path / "ready"
    process = job(site.path, name, ready, "stall")
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return process


@pytest.mark.parametrize("rerun", ["build", "converge"])
def test_sigkill_mid_converge_then_a_rerun_cleans_up_and_converges(site, tmp_path, rerun):
    image = site.image("www1", "local.img")
    change_site(site, "www1")
    process = stalled_job(site, "www1", tmp_path)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert len(loops_under(site.directory)) == 1  # left behind, with its mount and record
    assert len(mounts_under(site.output)) == 1
    assert len(list((site.output / "locks" / "attachments").glob("*.json"))) == 1
    # every command that takes the run lock first undoes what a killed run left attached
    if rerun == "build":
        run = site.build()
    else:
        done = subprocess.run(
            [str(REPO / "domus"), "converge", "www1", f"config={site.path}"],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        run = Run(done.returncode, done.stdout, done.stderr)
    assert "cleaned up after a killed run" in run.stderr
    assert_nothing_attached(site)
    assert fsck_clean(image)
    assert_netbsd_accepts(image, "ext2fs")
    with loop_mounted(image, readonly=True) as top:
        assert "httpd=NO\n" in (top / "etc" / "rc.conf").read_text()
        assert (top / "etc" / "fstab").read_text().endswith(SITE_LINE)
        assert not list(top.rglob("*.domus-new"))


def test_what_cannot_be_cleaned_up_is_named_with_the_commands_to_run(site, tmp_path):
    image = site.image("www1", "local.img")
    change_site(site, "www1")
    process = stalled_job(site, "www1", tmp_path)
    process.send_signal(signal.SIGKILL)
    process.wait()
    mountpoint = Path(mounts_under(site.output)[0])
    device = loops_under(site.directory)[0]
    busy = subprocess.Popen(["sleep", "60"], cwd=mountpoint)  # keeps the mount busy
    try:
        run = site.doit()
        assert f"could not clean up {device}" in run.stderr
        assert f"as root: umount {mountpoint}; losetup -d {device}; rm " in run.stderr
        # the stuck mount holds the killed run's copy, never the image: the image converges
        assert run.returncode == 0, run.stdout + run.stderr
        assert_netbsd_accepts(image, "ext2fs")
        with loop_mounted(image, readonly=True) as top:
            assert "httpd=NO\n" in (top / "etc" / "rc.conf").read_text()
    finally:
        busy.kill()
        busy.wait()
    site.build()
    assert_nothing_attached(site)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_sigterm_and_ctrl_c_mid_converge_unmount_and_detach(site, tmp_path, signum):
    image = site.image("www1", "local.img")
    change_site(site, "www1")
    process = stalled_job(site, "www1", tmp_path)
    process.send_signal(signum)
    process.communicate(timeout=60)
    assert process.returncode != 0
    if signum == signal.SIGTERM:
        assert process.returncode == -signal.SIGTERM  # and it still ends as SIGTERM ends it
    assert_nothing_attached(site)
    assert fsck_clean(image)


def test_an_existing_root_img_is_read_as_the_root_source_and_never_written(tmp_path):
    first = Site(tmp_path / "first")
    first.data["root"]["fs"] = "ext2fs"
    first.save()
    first.build("root")
    source = tmp_path / "seed-root.img"
    source.write_bytes(first.image("root.img").read_bytes())
    os.utime(source, ns=(OLD_MTIME, OLD_MTIME))
    before = sha(source)
    second = Site(tmp_path / "second")
    second.data["root"]["source"] = {"image": str(source)}
    second.save()
    run = second.build()
    assert "root" in run.ran
    assert (sha(source), source.stat().st_mtime_ns) == (before, OLD_MTIME)
    old, new = ImageReader(source, "ext2fs"), ImageReader(second.image("root.img"), "ffs")
    paths = old.paths() - {"lost+found"}
    assert new.paths() == paths
    for path in ["etc/rc", "etc/rc.orig", "dev/MAKEDEV", "etc/master.passwd"]:
        assert new.read(path) == old.read(path)
        assert (new.stat(path).mode, new.stat(path).uid) == (
            old.stat(path).mode,
            old.stat(path).uid,
        )
    assert_nothing_attached(second)
    assert loops_under(tmp_path) == []
    assert second.build().ran == set()


@pytest.mark.parametrize("backend", ["auto", "none"], ids=["mounted", "debugfs"])
def test_a_packages_directories_are_made_and_the_domus_links_and_files_left_alone(
    tmp_path, backend
):
    """A DIR line's directory is made with its mode and owner where the image has nothing;
    a link the domU put on the way is not followed out of the image, nor a file replaced."""
    from tests.pkgsrc_fixture import make_package

    site = ext2_site(tmp_path / "site", ("db1",), mount=backend == "auto", backend=backend)
    image = site.image("db1", "local.img")
    outside = tmp_path / "outside"
    outside.mkdir()
    with loop_mounted(image) as top:
        os.symlink(str(outside), top / "var" / "elsewhere")
        (top / "var" / "taken").write_text("the domU's\n")
    make_package(
        tmp_path / "domus-dirs-1.0.tgz",
        "domus-dirs-1.0",
        {"share/doc/dirs/README": b"dirs\n"},
        meta={
            "+INSTALL": b"# DIR: /var/dirs/deep m 0710 operator wheel\n"
            b"# DIR: /var/elsewhere/dirs m 0700\n# DIR: /var/taken m 0700\n"
        },
    )
    site.data["domains"]["db1"]["pkg"] = {
        "source": {"packages": [str(tmp_path / "domus-dirs-1.0.tgz")]}
    }
    site.save()
    run = site.build()
    assert ("(mount)" if backend == "auto" else "(debugfs)") in run.stderr
    assert "made the directories /etc/pkg, /var/dirs/deep\n" in run.stderr
    local = ImageReader(image, "ext2fs")
    deep, dirs = local.stat("var/dirs/deep"), local.stat("var/dirs")
    assert (deep.type, deep.mode, deep.uid, deep.gid) == ("dir", 0o710, 2, 0)
    assert (dirs.type, dirs.mode, dirs.uid, dirs.gid) == ("dir", 0o755, 0, 0)
    assert local.stat("etc/pkg").mode == 0o755
    assert local.read("var/taken") == b"the domU's\n"
    assert local.stat("var/elsewhere").type == "link"
    assert list(outside.iterdir()) == []
    assert fsck_clean(image)
    assert_nothing_attached(site)
    assert site.build().ran == set()


def test_a_mounted_converge_keeps_an_old_rc_d_script_where_rc_does_not_run_it(tmp_path):
    from tests.test_rc_pwd_mkdb import boot_scripts, change_pwd_mkdb

    site = ext2_site(tmp_path / "site", ("db1",), mount=True)
    image = site.image("db1", "local.img")
    before = boot_scripts(ImageReader(image, "ext2fs"))
    stray = "pwd_mkdb.domus-20200101T000000"  # where an earlier converge kept it: it runs
    with loop_mounted(image) as top:
        shutil.copy2(top / "etc" / "rc.d" / "pwd_mkdb", top / "etc" / "rc.d" / stray)
    change_pwd_mkdb(site, "# the site's change\n")
    run = site.build()
    assert "(mount)" in run.stderr
    local = ImageReader(image, "ext2fs")
    after = boot_scripts(local)
    assert set(after) == set(before) and after["pwd_mkdb"].endswith("# the site's change\n")
    kept = sorted(p for p in local.paths() if p.startswith("etc/rc.d.domus-backups/"))
    assert [local.text(p) for p in kept] == [before["pwd_mkdb"]] * 2
    assert kept[0] == f"etc/rc.d.domus-backups/{stray}"
    assert local.stat("etc/rc.d.domus-backups").mode == 0o700
    assert fsck_clean(image)
    assert_nothing_attached(site)
