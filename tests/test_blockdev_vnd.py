"""The NetBSD command sequence, against recording stand-ins of its tools first on PATH.

vnconfig, cgdconfig, sysctl, mount and umount are replaced by small scripts that append
their arguments to a log. vnconfig keeps its units in a state file, so that `vnconfig -l`
answers as NetBSD's does; mount bind-mounts a prepared directory (the "file system" of the
vnd) and umount undoes that, so the converge code runs unchanged over it. This is the only
place stand-ins are used: everything else attaches and mounts for real.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from tasks.blockdev.attach import mounted
from tasks.blockdev.vnd import parse_listing
from tasks.checks.filesystem import PHASES
from tasks.run.errors import DomusError
from tasks.site import BlockdevSpec
from tests.mounting import mounts_under, needs_root, release_everything_under
from tests.sites import Site

REAL_MOUNT = shutil.which("mount") or "/usr/bin/mount"
REAL_UMOUNT = shutil.which("umount") or "/usr/bin/umount"
OPTIONS = "noatime,nodev,nosuid,noexec"

STANDINS = {
    "vnconfig": r"""
state="$DOMUS_STANDIN_STATE/vnd"; touch "$state"
show() {
	line=$(grep "^$1 " "$state")
	if [ -z "$line" ]; then echo "$1: not in use"
	else file=${line#* }; echo "$1: $(stat -c %m "$file") (/dev/wd0a) inode $(stat -c %i "$file")"
	fi
}
case "$1" in
-l) if [ -n "${2:-}" ]; then show "$2"; else for u in vnd0 vnd1 vnd2 vnd3; do show $u; done; fi ;;
-u) grep -v "^$2 " "$state" > "$state.new"; mv "$state.new" "$state" ;;
-r) echo "$2 $3" >> "$state" ;;
*) echo "$1 $2" >> "$state" ;;
esac
""",
    "cgdconfig": "",
    # what NetBSD's fsck_ffs -n says of a clean file system
    "fsck_ffs": "printf '** %s (NO WRITE)\\n' \"$2\"\n"
    + "".join(f"echo '** {phase}'\n" for phase in PHASES),
    "sysctl": "echo 3\n",
    "mount": f'for last; do :; done\nexec {REAL_MOUNT} --bind "$DOMUS_STANDIN_TREE" "$last"\n',
    "umount": f'exec {REAL_UMOUNT} "$@"\n',
}


@pytest.fixture
def netbsd(tmp_path, monkeypatch) -> Path:
    """Stand-ins first on PATH; returns their log."""
    bin_dir, state, tree = tmp_path / "bin", tmp_path / "state", tmp_path / "vnd-fs"
    for directory in (bin_dir, state, tree):
        directory.mkdir()
    log = tmp_path / "commands.log"
    for name, body in STANDINS.items():
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\necho "{name} $*" >> "$DOMUS_STANDIN_LOG"\n{body}')
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("DOMUS_STANDIN_LOG", str(log))
    monkeypatch.setenv("DOMUS_STANDIN_STATE", str(state))
    monkeypatch.setenv("DOMUS_STANDIN_TREE", str(tree))
    yield log
    release_everything_under(tmp_path)


def commands(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_parse_listing_reads_each_form_vnconfig_prints():
    listing = (
        "vnd0: / (/dev/wd0a) inode 1234\nvnd1: not in use\n"
        "vnd2: wd1e inode 99\nvnconfig: VNDIOCGET: Bad file descriptor\n"
    )
    assert parse_listing(listing) == {"vnd0": ("/", 1234), "vnd1": None, "vnd2": ("wd1e", 99)}


@needs_root
@pytest.mark.parametrize("readonly", [False, True], ids=["read-write", "read-only"])
def test_vnd_sequence_attach_mount_umount_detach(netbsd, tmp_path, readonly):
    image = tmp_path / "local.img"
    image.write_bytes(b"\0" * 4096)
    locks = tmp_path / "locks"
    with mounted(
        image,
        "ffs",
        blockdev=BlockdevSpec("vnd", 2, 5),
        locks=locks,
        what="testing",
        readonly=readonly,
    ) as top:
        assert top == locks / "mnt" / "vnd0"
        assert mounts_under(locks) == [str(top)]
        assert (locks / "attachments" / "vnd0.json").exists()
    r = "-r " if readonly else ""
    assert commands(netbsd) == [
        "vnconfig -l",  # is the image attached anywhere?
        "vnconfig -l vnd0",  # is the unit free of anything not ours?
        f"vnconfig {r}vnd0 {image}",
        f"mount -t ffs {'-r' if readonly else '-w'} -o {OPTIONS} /dev/vnd0a {top}",
        f"umount {top}",
        "vnconfig -l vnd0",  # still attached to our image? then
        "vnconfig -u vnd0",
    ]
    assert mounts_under(locks) == []
    assert not (locks / "attachments" / "vnd0.json").exists()
    assert not top.exists()


@needs_root
def test_cgd_sequence_for_an_encrypted_image(netbsd, tmp_path):
    image, params = tmp_path / "local.img", tmp_path / "www1-local.params"
    image.write_bytes(b"\0" * 4096)
    params.write_text("algorithm aes-xts;\n")
    locks = tmp_path / "locks"
    with mounted(
        image,
        "ffs",
        blockdev=BlockdevSpec("vnd", 2, 5),
        locks=locks,
        what="testing",
        readonly=False,
        cgd_params=params,
    ) as top:
        pass
    assert commands(netbsd) == [
        "vnconfig -l",
        "vnconfig -l vnd0",
        f"vnconfig vnd0 {image}",
        "sysctl -n kern.rawpartition",
        f"cgdconfig cgd0 /dev/vnd0d {params}",
        f"mount -t ffs -w -o {OPTIONS} /dev/cgd0a {top}",
        f"umount {top}",
        "cgdconfig -u cgd0",
        "vnconfig -l vnd0",
        "vnconfig -u vnd0",
    ]


@needs_root
def test_a_unit_configured_by_someone_else_is_skipped(netbsd, tmp_path):
    other = tmp_path / "someone-elses.img"
    other.write_bytes(b"x")
    (tmp_path / "state" / "vnd").write_text(f"vnd0 {other}\n")
    image = tmp_path / "local.img"
    image.write_bytes(b"\0" * 4096)
    with mounted(
        image,
        "ffs",
        blockdev=BlockdevSpec("vnd", 2, 5),
        locks=tmp_path / "locks",
        what="testing",
        readonly=False,
    ):
        pass
    assert f"vnconfig vnd1 {image}" in commands(netbsd)
    assert "vnconfig -u vnd0" not in commands(netbsd)
    assert (tmp_path / "state" / "vnd").read_text() == f"vnd0 {other}\n"


@needs_root
def test_an_image_on_a_vnd_already_is_refused_naming_the_unit(netbsd, tmp_path):
    image = tmp_path / "local.img"
    image.write_bytes(b"\0" * 4096)
    (tmp_path / "state" / "vnd").write_text(f"vnd3 {image}\n")
    with (
        pytest.raises(DomusError, match="is in use: attached to vnd3"),
        mounted(
            image,
            "ffs",
            blockdev=BlockdevSpec("vnd", 2, 5),
            locks=tmp_path / "locks",
            what="testing",
            readonly=False,
        ),
    ):
        pass
    assert commands(netbsd) == ["vnconfig -l"]


@needs_root
def test_an_ffs_local_image_converges_through_vnd_with_the_same_code(netbsd, tmp_path):
    site = Site(tmp_path / "site")
    site.data["blockdev"] = {"backend": "vnd"}
    site.data["converge"] = {"mount": True}
    site.save()
    site.build()
    image = site.image("www1", "local.img")
    before = image.read_bytes()
    tree = tmp_path / "vnd-fs"  # what the stand-in mount shows as the image's file system
    (tree / "etc").mkdir()
    (tree / "etc" / "rc.conf").write_text("rc_configured=YES\nhttpd=YES\n")
    (tree / "etc" / "fstab").write_text("# old fstab\n")
    (tree / "var").mkdir()
    (tree / "var" / "data").write_text("the domU's\n")
    site.data["domains"]["www1"]["rc_conf"]["httpd"] = "NO"
    site.save()
    run = site.build()
    assert run.ran == {"local:www1"}
    top = site.output / "locks" / "mnt" / "vnd0"
    copy = image.with_name(".local.img.partial")
    # checked by NetBSD's fsck through a read-only vnd first (converge.mount); read from
    # the image, read-only; written into a copy that is checked and renamed over it
    assert commands(netbsd) == [
        "vnconfig -l",
        "vnconfig -l vnd0",
        f"vnconfig -r vnd0 {image}",
        "fsck_ffs -n /dev/rvnd0a",
        "vnconfig -l vnd0",
        "vnconfig -u vnd0",
        "vnconfig -l",
        "vnconfig -l",
        "vnconfig -l vnd0",
        f"vnconfig -r vnd0 {image}",
        f"mount -t ffs -r -o {OPTIONS} /dev/vnd0a {top}",
        f"umount {top}",
        "vnconfig -l vnd0",
        "vnconfig -u vnd0",
        "vnconfig -l",
        "vnconfig -l",
        "vnconfig -l vnd0",
        f"vnconfig vnd0 {copy}",
        f"mount -t ffs -w -o {OPTIONS} /dev/vnd0a {top}",
        f"umount {top}",
        "vnconfig -l vnd0",
        "vnconfig -u vnd0",
        f"fsck_ffs -fn {copy}",
    ]
    assert not copy.exists()
    rc_conf = (tree / "etc" / "rc.conf").read_text()
    assert rc_conf.startswith("rc_configured=YES\nhttpd=NO\n")
    assert (tree / "etc" / "fstab").read_text().startswith("# /etc/fstab of www1")
    backups = {
        path.name.split(".domus-")[0]: path.read_text() for path in (tree / "etc").glob("*.domus-*")
    }
    assert backups == {"rc.conf": "rc_configured=YES\nhttpd=YES\n", "fstab": "# old fstab\n"}
    assert (tree / "var" / "data").read_text() == "the domU's\n"
    assert image.read_bytes() == before  # only the stand-in "file system" was written
    assert site.build().ran == set()


@needs_root
def test_an_image_netbsds_fsck_rejects_is_never_mounted_with_converge_mount(netbsd, tmp_path):
    site = Site(tmp_path / "site")
    site.data["blockdev"] = {"backend": "vnd"}
    site.data["converge"] = {"mount": True}
    site.save()
    site.build()
    image = site.image("www1", "local.img")
    before = image.read_bytes()
    (tmp_path / "bin" / "fsck_ffs").write_text(
        '#!/bin/sh\necho "fsck_ffs $*" >> "$DOMUS_STANDIN_LOG"\n'
        "echo '** /dev/rvnd0a (NO WRITE)'\necho 'BAD SUPER BLOCK: MAGIC NUMBER WRONG'\nexit 8\n"
    )
    site.data["domains"]["www1"]["rc_conf"]["httpd"] = "NO"
    site.save()
    run = site.doit()
    said = run.stdout + run.stderr
    assert run.returncode != 0, said
    assert f"{image} is not mounted to converge it: `fsck_ffs -n` found problems" in said
    assert "BAD SUPER BLOCK: MAGIC NUMBER WRONG" in said
    assert [c for c in commands(netbsd) if c.startswith(("mount", "fsck"))] == [
        "fsck_ffs -n /dev/rvnd0a"
    ]
    assert commands(netbsd)[-1] == "vnconfig -u vnd0"  # the read-only unit is let go
    assert image.read_bytes() == before
