"""Entropy early in a domU's boot: the swap key and the entropy seed, checked against NetBSD.

The swap params must not wait for /dev/random, and rc.d/random_seed must accept the seed's
directory. Both are checked by running or parsing what NetBSD runs or parses.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.cgd.params import URandomKey, parse
from tasks.edits.rcconf import set_rc_vars
from tasks.images.tree import Tree
from tasks.kinds.local import context as local_context
from tasks.recipes.local import make_entropy_dir
from tasks.render import Templates
from tasks.site import load_site
from tasks.site.netbsd import ENTROPY_FILE
from tests.conftest import NETBSD, REPO

RC_D = NETBSD / "rc.d"
DEFAULT_ENTROPY_FILE = "/var/db/entropy-file"
# etc/rc.d/fsck is not among the fixtures; NetBSD's (src/etc/rc.d/fsck) says so.
FSCK_REQUIRES = {"localswap"}


@pytest.fixture(scope="module")
def site():
    return load_site(REPO / "config" / "site.yaml")


def rendered(site, name: str, template: str) -> str:
    domu = next(d for d in site.domus if d.name == name)
    return Templates(None).render(f"local/{template}", local_context(site, domu))


# --- swap: a fresh key from /dev/urandom ------------------------------------------------------


@pytest.mark.parametrize("name", ["www1", "db1"])
def test_swap_params_take_a_fresh_key_from_urandom(site, name):
    text = rendered(site, name, "etc/cgd/xbd1d")
    # cgdconfig's params.c knows the method by exactly this word
    assert re.search(r"^keygen urandomkey;$", text, re.M)
    assert parse(text).keygens == (URandomKey(),)


def rc_order(name: str) -> dict[str, set[str]]:
    text = (RC_D / name).read_text()
    return {
        key: set(" ".join(re.findall(rf"^# {key}:\s*(.*)$", text, re.M)).split())
        for key in ("PROVIDE", "REQUIRE", "BEFORE")
    }


def test_cgd_and_root_run_before_random_seed():
    """rcorder: cgd -> DISKS -> localswap -> fsck -> mountcritlocal -> random_seed, and
    root -> localswap: the swap key is made before the seed is loaded (so it must not wait
    for /dev/random), and /local is writable when random_seed runs."""
    cgd, root, swap1 = rc_order("cgd"), rc_order("root"), rc_order("swap1")
    mountcritlocal, random_seed = rc_order("mountcritlocal"), rc_order("random_seed")
    assert "DISKS" in cgd["BEFORE"]
    assert {"DISKS", *root["PROVIDE"]} <= swap1["REQUIRE"]
    assert swap1["PROVIDE"] == FSCK_REQUIRES
    assert mountcritlocal["REQUIRE"] == {"fsck"}
    assert random_seed["REQUIRE"] == mountcritlocal["PROVIDE"]


# --- rc.d/random_seed and the seed's directory ------------------------------------------------

# NetBSD's df -G (src/bin/df/df.c, prtstat): the statvfs of the file system holding the path.
DF_STAND_IN = """\
import json, sys
mounts = json.loads(MOUNTS)
with open(LOG, "a") as log:
    log.write(" ".join(sys.argv[1:]) + "\\n")
if len(sys.argv) != 3 or sys.argv[1] != "-G":
    sys.exit("usage: df -G path")
path = sys.argv[2].rstrip("/") or "/"
def holds(mount):
    return mount == "/" or path == mount or path.startswith(mount + "/")
on, source, fstype = max((m for m in mounts if holds(m[0])), key=lambda m: len(m[0]))
print("%10s (%-12s): %7ld block size %12ld frag size" % (on, source, 16384, 2048))
print("%10d total blocks %10d free blocks  %10d available" % (30000, 20000, 18500))
print("%10d total files  %10d free files %12lx filesys id" % (7000, 7600, 0xA9003))
print("%10s fstype  %#15lx flag  %17ld filename length" % (fstype, 0x1000, 255))
print("%10lu owner %17d syncwrites %12d asyncwrites" % (0, 12, 40))
print()
"""

RUN_RANDOM_SEED = """\
. "$RC_CONF"                    # /etc/rc loads rc.conf before it runs any rc.d script
_rc_subr_loaded=:               # ... and rc.subr: these two are all the script uses of it
load_rc_config() { :; }         # rc.conf is loaded; there is no rc.conf.d/random_seed
run_rc_command() { :; }
. "$RANDOM_SEED"
echo "random_file=$random_file"
if fs_safe "$(dirname "$random_file")"; then echo accepted; else echo refused; fi
random_save
"""


def fstab_mounts(fstab: str) -> list[tuple[str, str, str]]:
    """The domU's mount table as its fstab makes it: mount point, source, type."""
    mounts = []
    for line in fstab.splitlines():
        fields = line.split()
        if fields and not line.startswith("#") and fields[2] != "swap":
            mounts.append((fields[1], fields[0], fields[2]))
    return mounts


def run_random_seed(site, name: str, rc_vars: dict[str, str], tmp_path: Path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    mounts = fstab_mounts(rendered(site, name, "etc/fstab"))
    df = bin_dir / "df"
    df.write_text(
        f"#!{sys.executable}\nMOUNTS = {json.dumps(json.dumps(mounts))}\n"
        f"LOG = {str(tmp_path / 'df.log')!r}\n{DF_STAND_IN}"
    )
    rndctl = bin_dir / "rndctl"
    rndctl.write_text(f'#!/bin/sh\necho "$*" >> {tmp_path / "rndctl.log"}\n')
    df.chmod(0o755)
    rndctl.chmod(0o755)
    rc_conf = tmp_path / "rc.conf"
    rc_conf.write_text(set_rc_vars((NETBSD / "rc.conf").read_text(), rc_vars))
    result = subprocess.run(
        ["sh", "-c", RUN_RANDOM_SEED],
        capture_output=True,
        text=True,
        env={
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "RC_CONF": str(rc_conf),
            "RANDOM_SEED": str(RC_D / "random_seed"),
        },
        timeout=30,
    )
    logs = {}
    for log in ("df", "rndctl"):
        path = tmp_path / f"{log}.log"
        logs[log] = path.read_text().splitlines() if path.exists() else []
    return result, logs


def domu_rc_vars(site, name: str) -> dict[str, str]:
    return dict(next(d for d in site.domus if d.name == name).rc_conf)


needs_sh = pytest.mark.skipif(shutil.which("sh") is None, reason="needs sh")


@needs_sh
@pytest.mark.parametrize("name,local_fs", [("www1", "ffs"), ("db1", "ext2fs")])
def test_random_seed_accepts_the_domus_seed_file(site, name, local_fs, tmp_path):
    rc_vars = domu_rc_vars(site, name)
    assert rc_vars["random_file"] == ENTROPY_FILE
    result, logs = run_random_seed(site, name, rc_vars, tmp_path)
    assert result.stdout.splitlines() == [
        f"random_file={ENTROPY_FILE}",
        "accepted",
        f"Saved entropy to {ENTROPY_FILE}.",
    ]
    assert result.stderr == ""
    assert logs["df"] == ["-G /local/var/db"] * 2
    assert logs["rndctl"] == [f"-S {ENTROPY_FILE}"]
    assert ("/local", "/dev/xbd2a", local_fs) in fstab_mounts(rendered(site, name, "etc/fstab"))


@needs_sh
def test_random_seed_refuses_the_default_file_on_the_null_mounted_var(site, tmp_path):
    rc_vars = {k: v for k, v in domu_rc_vars(site, "www1").items() if k != "random_file"}
    result, logs = run_random_seed(site, "www1", rc_vars, tmp_path)
    assert result.stdout.splitlines() == [f"random_file={DEFAULT_ENTROPY_FILE}", "refused"]
    refusal = f"random_seed: {DEFAULT_ENTROPY_FILE}: Bad file system type null"
    assert result.stderr.splitlines() == [refusal, refusal]
    assert logs["df"] == ["-G /var/db"] * 2
    assert logs["rndctl"] == []


def test_the_seed_directory_is_made_when_the_root_lacks_it(tmp_path):
    local = Tree.empty(tmp_path / "a")
    local.mkdir("var", 0o755)
    make_entropy_dir(local)
    assert local.entry("var/db").type == "dir"
    assert (local.entry("var/db").mode, local.entry("var/db").uid) == (0o755, 0)
    assert (tmp_path / "a" / "var" / "db").is_dir()


def test_the_releases_seed_directory_is_kept_as_it_ships(tmp_path):
    local = Tree.empty(tmp_path / "a")
    local.mkdir("var", 0o755)
    local.mkdir("var/db", 0o750, uid=0, gid=5)
    make_entropy_dir(local)
    assert (local.entry("var/db").mode, local.entry("var/db").gid) == (0o750, 5)
