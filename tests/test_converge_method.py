"""How a local.img is converged as root: in user space by default, so that no host kernel
parses a domU's disk; by a mount only with `converge.mount: true`, and then only once
`e2fsck -fn` found nothing.

Every command runs with recording stand-ins for mount, umount and losetup first on PATH
(each runs the real one): the machine's mount table is shared with other work, their log
is this test's alone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.mounting import loops_under, needs_root, sha
from tests.sites import Site
from tests.test_status import built, domus, status

pytestmark = needs_root
WATCHED = ("mount", "umount", "losetup")


@pytest.fixture
def recorded(tmp_path, monkeypatch) -> Path:
    """The log every mount, umount and losetup run writes a line to."""
    stand_ins = tmp_path / "stand-ins"
    stand_ins.mkdir()
    log = tmp_path / "block-device-calls.log"
    log.touch()
    for tool in WATCHED:
        real = shutil.which(tool, path="/usr/bin:/bin:/usr/sbin:/sbin")
        assert real is not None
        script = stand_ins / tool
        script.write_text(f'#!/bin/sh\necho "{tool} $*" >> {log}\nexec {real} "$@"\n')
        script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{stand_ins}:{os.environ['PATH']}")
    return log


def attached_or_mounted(log: Path) -> list[str]:
    """The calls that mounted or attached something (`losetup --list` only asks)."""
    calls = log.read_text().splitlines()
    return [call for call in calls if not call.startswith("losetup --list ")]


def change_db1(site: Site) -> None:
    """A managed variable of db1's rc.conf: its ext2fs local.img converges."""
    site.data["domains"]["db1"]["rc_conf"]["sshd"] = "NO"
    site.save()


def change_every_domu(site: Site) -> None:
    """A managed variable of every rc.conf: the FFS images of www1 and www2 converge too."""
    site.data["defaults"]["rc_conf"]["sshd"] = "NO"
    site.save()


def opt_in(site: Site) -> None:
    site.data["converge"] = {"mount": True}
    site.save()


def rc_conf(image: Path) -> str:
    return subprocess.run(
        ["debugfs", "-R", "cat /etc/rc.conf", str(image)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def why(site: Site, name: str) -> str:
    item = status(site, name)[(name, "local")]
    assert item["action"] == "converge", item
    return "\n".join(item["why"])


def test_a_root_build_converges_the_ext2fs_local_img_through_debugfs_without_a_mount(
    tmp_path, recorded
):
    site = built(tmp_path)
    image = site.image("db1", "local.img")
    change_every_domu(site)
    assert "through debugfs, without mounting it" in why(site, "db1")
    assert "without mounting it" in why(site, "www1")  # FFS: rewritten through makefs
    assert "mount" not in why(site, "db1").replace("without mounting", "")
    dry = domus(site, "converge", "--dry-run", "db1")
    assert dry.returncode == 1, dry.stderr
    assert "would converge it through debugfs, without mounting it" in dry.stderr
    run = domus(site, "build")
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"converged {image} (debugfs)" in run.stderr
    assert "sshd=NO" in rc_conf(image)
    assert attached_or_mounted(recorded) == []
    assert loops_under(tmp_path) == []


def test_with_converge_mount_the_ext2fs_local_img_is_mounted(tmp_path, recorded):
    site = built(tmp_path)
    image = site.image("db1", "local.img")
    opt_in(site)
    change_every_domu(site)
    assert "by mounting it through the host kernel (converge.mount: true)" in why(site, "db1")
    assert "rewriting it whole" in why(site, "www1")  # Linux mounts no FFS to write it
    dry = domus(site, "converge", "--dry-run", "db1")
    assert dry.returncode == 1, dry.stderr
    assert "would converge it by mounting it" in dry.stderr
    run = domus(site, "build")
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"converged {image} (mount)" in run.stderr
    assert "sshd=NO" in rc_conf(image)
    calls = attached_or_mounted(recorded)
    assert any(call.startswith("mount -t ext2 ") for call in calls), calls
    assert loops_under(tmp_path) == []


def corrupt_group_descriptor(image: Path) -> None:
    """Group 0's block bitmap pointed past the file system: the kernel would follow it;
    e2fsck -fn falls back to the backup descriptors and exits 0, but says so."""
    size = int(
        subprocess.run(["dumpe2fs", "-h", str(image)], capture_output=True, text=True, check=True)
        .stdout.split("Block size:")[1]
        .split()[0]
    )
    descriptors = size * (1 if size > 1024 else 2)  # the block after the superblock's
    with open(image, "r+b") as f:
        f.seek(descriptors)
        f.write((0x0FFFFFF0).to_bytes(4, "little"))


def corrupt_inode_bitmap(image: Path) -> None:
    """Group 0's inode bitmap cleared: e2fsck -fn exits 4, without -f it says "clean"."""
    out = subprocess.run(["dumpe2fs", str(image)], capture_output=True, text=True, check=True)
    block = int(out.stdout.split("Inode bitmap at ")[1].split()[0])
    size = int(out.stdout.split("Block size:")[1].split()[0])
    with open(image, "r+b") as f:
        f.seek(block * size)
        f.write(bytes(4))


@pytest.mark.parametrize(
    "corrupt", [corrupt_group_descriptor, corrupt_inode_bitmap], ids=["descriptor", "bitmap"]
)
def test_an_opted_in_mount_of_an_image_e2fsck_rejects_is_refused_before_any_mount(
    tmp_path, recorded, corrupt
):
    site = built(tmp_path)
    image = site.image("db1", "local.img")
    corrupt(image)
    opt_in(site)
    change_db1(site)
    before = sha(image)
    recorded.write_text("")  # the build that made the images is not this test's
    for args in (("converge", "db1"), ("converge", "--dry-run", "db1")):
        run = domus(site, *args)
        assert run.returncode == 1, run.stdout + run.stderr
        assert f"{image} is not mounted to converge it: `e2fsck -fn` found problems" in run.stderr
        found = "Corrupt group descriptor" if corrupt is corrupt_group_descriptor else "bitmap"
        assert found in run.stderr
        assert "without converge.mount" in run.stderr  # the hint
    assert sha(image) == before
    assert attached_or_mounted(recorded) == []
    assert loops_under(tmp_path) == []
