"""A domU's state is root's alone on the dom0: its images and every copy of them 0600 in a
0700 directory from their creation, plaintext only in a private .plaintext.PID directory
(never the system's temporary directory), mount points under a 0700 directory."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tasks.deploy.moves import pull_command
from tasks.images.publish import publishing
from tasks.site import load_site
from tests.conftest import REPO
from tests.mounting import needs_root, release_everything_under
from tests.sealed_job import stopped_at
from tests.sites import Run, Site
from tests.test_converge import change_site, ext2_site, stalled_job
from tests.test_deploy_site import hosts_site

DOMUS = ("www1", "www2", "db1")


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def domus(site: Site, *args: str, env: dict[str, str] | None = None) -> Run:
    done = subprocess.run(
        [sys.executable, "-m", "tasks.cli", *args, f"config={site.path}"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
    )
    return Run(done.returncode, done.stdout, done.stderr)


@pytest.fixture(autouse=True)
def nothing_left_behind(tmp_path):
    yield
    release_everything_under(tmp_path)


@pytest.fixture
def umask() -> Iterator[object]:
    """Sets the umask of this process and of the builds it starts; restored afterwards."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


# -- images ------------------------------------------------------------------------------


def test_publishing_creates_the_file_with_its_mode_before_a_byte_is_written(tmp_path, umask):
    umask(0)
    final = tmp_path / "images" / "www1" / "local.img"
    with publishing(final) as partial:
        assert (mode(partial), partial.stat().st_size) == (0o600, 0)
        assert mode(final.parent) == 0o700
        partial.write_bytes(b"the domU's state")
    assert mode(final) == 0o600
    config = tmp_path / "xen" / "www1.cfg"
    with publishing(config, 0o644) as partial:  # what others may read says so
        assert mode(partial) == 0o644
    assert mode(config.parent) == 0o777


@pytest.mark.parametrize("mask", [0o022, 0o000])
def test_a_fresh_build_makes_each_domus_images_0600_in_a_0700_directory(tmp_path, umask, mask):
    umask(mask)
    site = Site(tmp_path / "site")
    site.build()
    for name in DOMUS:
        assert mode(site.image(name)) == 0o700
        assert mode(site.image(name, "local.img")) == 0o600
        assert mode(site.image(name, "swap.img")) == 0o600
    # shared by every domU, and nothing of one of them: readable by all
    assert mode(site.image("root.img").resolve()) & 0o444 == 0o444
    assert mode(site.image("www1", "pkg.img").resolve()) & 0o444 == 0o444


def test_images_made_readable_are_tightened_by_the_next_no_op_build(tmp_path, umask):
    site = Site(tmp_path / "site")
    assert domus(site, "build").returncode == 0
    assert domus(site, "build").stdout.startswith("0 built")
    # as domus made them before they were private, and a backup of that time
    backup = site.image("www1", "local-20260101T000000.img")
    backup.write_bytes(b"an old state")
    backup.chmod(0o644)
    site.image("www1").chmod(0o755)
    site.image("db1", "local.img").chmod(0o644)
    moved = site.image("www2.moved-20260101T000000")  # a domU that moved to another dom0
    moved.mkdir(mode=0o755)
    (moved / "local.img").write_bytes(b"its state")
    (moved / "local.img").chmod(0o644)
    run = domus(site, "build")
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("0 built")
    for path in (backup, site.image("db1", "local.img"), moved / "local.img"):
        assert mode(path) == 0o600
        assert f"domus: {path} was readable by others: now mode 0600" in run.stderr
    assert mode(site.image("www1")) == mode(moved) == 0o700
    assert os.readlink(site.image("www1", "pkg.img"))  # a link to its generation: as it was
    again = domus(site, "build")
    assert again.stdout.startswith("0 built") and "readable" not in again.stderr


def test_the_pass_over_existing_images_stats_them_and_reads_nothing(tmp_path):
    from tasks.images.private import make_images_private

    images = tmp_path / "images"
    (images / "generations" / "pkg").mkdir(parents=True)
    (images / "generations" / "pkg" / "pkg.img").write_bytes(b"")
    (images / "generations" / "pkg" / "pkg.img").chmod(0o644)
    (images / "www1").mkdir(mode=0o700)
    (images / "www1" / "local.img").write_bytes(b"")
    (images / "www1" / "local.img").chmod(0o000)  # unreadable: a read would fail
    (images / "www1" / "local.img.inputs.json").write_text("{}")
    (images / "www1" / "local.img.inputs.json").chmod(0o644)
    assert make_images_private(images) is False
    assert mode(images / "www1" / "local.img") == 0o000  # tightened only, never loosened
    assert mode(images / "generations" / "pkg" / "pkg.img") == 0o644  # shared
    assert mode(images / "www1" / "local.img.inputs.json") == 0o644  # not an image
    backup = images / "www1" / "local-20260101T000000.img"
    backup.write_bytes(b"")
    backup.chmod(0o644)
    # a no-op build stats the directory only: none but root reaches into it
    assert make_images_private(images, every_image=False) is False
    assert make_images_private(images) is True
    assert mode(backup) == 0o600


def test_reprovision_backups_are_0600(tmp_path, umask):
    site = Site(tmp_path / "site")
    site.build()
    run = domus(site, "reprovision", "www1")
    assert run.returncode == 0, run.stderr
    backups = list(site.image("www1").glob("local-*.img"))
    assert len(backups) == 1
    assert mode(backups[0]) == mode(site.image("www1", "local.img")) == 0o600


def test_a_rewriting_converge_keeps_the_old_image_0600(tmp_path, umask):
    site = Site(tmp_path / "site")
    site.build()
    site.data["domains"]["www1"]["rc_conf"]["httpd"] = "NO"  # an FFS local.img: rewritten
    site.save()
    run = domus(site, "build")
    assert run.returncode == 0, run.stderr
    kept = list(site.image("www1").glob("local-converge-*.img"))
    assert len(kept) == 1
    assert mode(kept[0]) == mode(site.image("www1", "local.img")) == 0o600


def test_a_moved_domus_copy_here_is_0600_in_a_0700_directory(tmp_path, umask):
    site = load_site(hosts_site(tmp_path).path)
    pull = pull_command(site, "db1", site.host("alpha"))
    # the old host's images, here: the very rsync line with the host taken out of it
    old = tmp_path / "alpha"
    there = old / "images" / "db1"
    there.mkdir(parents=True)
    for name in ("local.img", "local.img.inputs.json"):
        (there / name).write_bytes(b"the domU's state")
        (there / name).chmod(0o644)
    alpha = site.host("alpha")
    remote = f"{alpha.user}@{alpha.address}:{Path(alpha.output) / 'images'}"
    assert remote in pull
    subprocess.run(["sh", "-c", pull.replace(remote, str(old / "images"))], check=True)
    copy = site.output / "deploy" / "moves" / "db1"
    assert mode(copy) == mode(copy.parent) == 0o700
    assert mode(copy / "local.img") == mode(copy / "local.img.inputs.json") == 0o600


# -- plaintext -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sealed_site(tmp_path_factory) -> Site:
    site = Site(tmp_path_factory.mktemp("sealed"))
    site.data["dom0"] = "netbsd"  # which opens it with cgd: what check holds it to
    site.data["domains"] = {"db1": site.data["domains"]["db1"]}  # an ext2fs local.img
    site.data["domains"]["db1"]["local"]["encrypt"] = "dom0"
    site.save()
    site.build()
    return site


def files_under(top: Path) -> set[Path]:
    return {p for p in top.rglob("*") if not p.is_dir()}


def test_a_killed_check_leaves_its_plaintext_only_in_its_private_directory(sealed_site, tmp_path):
    site = sealed_site
    before = files_under(site.output)
    process = stopped_at(site.path, "db1", tmp_path / "mark", "checking")
    plain = site.image("db1", f".plaintext.{process.pid}")
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert mode(plain) == 0o700
    assert {p for p in files_under(site.output) - before if plain not in p.parents} == set()
    assert [mode(p) for p in plain.iterdir()] == [0o600]
    legacy = site.image(".domus-check-k2x9a1")  # what a check killed before this left
    legacy.mkdir(mode=0o700)
    (legacy / "local.plain").write_bytes(b"the domU's state")
    run = domus(site, "check", "db1")
    assert run.returncode == 0, run.stdout + run.stderr
    for left in (plain, legacy):
        assert f"domus: removed {left}, plaintext a killed run left" in run.stderr
        assert not left.exists()
    # beside what was there, only the findings the check keeps (0600, no plaintext)
    kept = site.output / "check-verdicts.json"
    assert files_under(site.output) == before | {kept}
    assert mode(kept) == 0o600


@pytest.fixture
def watched_tmpdir(tmp_path) -> Iterator[Path]:
    """An empty directory for TMPDIR, append-only: what is put there stays to be seen."""
    directory = tmp_path / "tmpdir"
    directory.mkdir()
    subprocess.run(["chattr", "+a", str(directory)], check=True)
    yield directory
    subprocess.run(["chattr", "-R", "-a", str(directory)], check=True)


@needs_root
def test_a_sealed_ext2fs_converge_writes_nothing_in_the_systems_temporary_directory(
    sealed_site, watched_tmpdir
):
    site = sealed_site
    site.data["domains"]["db1"]["rc_conf"]["ntpd"] = "NO"
    site.save()
    run = domus(site, "converge", "db1", env={**os.environ, "TMPDIR": str(watched_tmpdir)})
    assert run.returncode == 0, run.stdout + run.stderr
    assert "db1" in run.stderr  # it did converge
    assert list(watched_tmpdir.iterdir()) == []
    assert not list(site.output.rglob(".plaintext.*"))


@needs_root
def test_show_of_a_plain_ext2fs_image_writes_nothing_in_the_systems_temporary_directory(
    tmp_path, watched_tmpdir
):
    site = ext2_site(tmp_path / "site", ("www1",))
    env = {**os.environ, "TMPDIR": str(watched_tmpdir)}
    run = domus(site, "show", "local:www1:/etc/rc.conf", env=env)
    assert run.returncode == 0, run.stderr
    assert "rc_configured" in run.stdout
    assert list(watched_tmpdir.iterdir()) == []
    assert not list(site.output.rglob(".plaintext.*"))


# -- mount points --------------------------------------------------------------------------


@needs_root
def test_a_mounted_images_mount_point_is_under_a_0700_directory(tmp_path):
    site = ext2_site(tmp_path / "site", ("www1",), mount=True)
    change_site(site, "www1")
    process = stalled_job(site, "www1", tmp_path)  # converging, the copy mounted
    try:
        mountpoint = Path((tmp_path / "ready").read_text())
        assert mountpoint.parent == site.output / "locks" / "mnt"
        assert mode(mountpoint.parent) == 0o700
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    site.build()  # undoes what the killed run left mounted
