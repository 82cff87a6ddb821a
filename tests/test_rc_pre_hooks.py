"""/etc/rc.pre-hooks, rendered and run under a POSIX sh with stand-ins for NetBSD's commands.

fsck_ffs, fsck_ext2fs, cgdconfig, mount and stty are NetBSD's (or act on NetBSD devices):
each stand-in records its call and answers as the test says. The hook's last line execs
NetBSD's /etc/rc; the test runs everything before it and records that it got there.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tasks.kinds.root import context as root_context
from tasks.render import Templates
from tasks.site import load_site
from tests.conftest import REPO

EXEC_RC = 'exec /bin/sh /etc/rc "$@"'
REACHED_RC = 'echo "reached: $0 /etc/rc"'
SHELLS = {"dash": ["dash"], "bash --posix": ["bash", "--posix"]}

# One script for every stand-in: it logs "name args", and answers from the environment.
STAND_IN = r"""#!/bin/sh
me=${0##*/}
echo "$me $*" >> "$STAND_IN_LOG"
case $me in
fsck_*)
	# $me_<device>="<exit status> <output>"; a file system of another type by default
	dev=${2##*/}
	eval "answer=\${${me}_${dev}:-}"
	[ -n "$answer" ] || answer="8 $2: BAD SUPER BLOCK: MAGIC NUMBER WRONG"
	echo "${answer#* }"
	exit "${answer%% *}"
	;;
cgdconfig)
	# cgdconfig -p cgd1 /dev/xbd2d PARAMS reads the passphrase from stdin (verify_method ffs)
	read -r passphrase
	echo "passphrase $passphrase for ${4##*/}" >> "$STAND_IN_LOG"
	if [ "$passphrase" = "$PASSPHRASE" ] && [ "${4##*/}" = "$OPENS" ]; then
		exit 0
	fi
	echo "cgdconfig: verification failed permanently" 1>&2
	exit 1
	;;
esac
exit 0
"""


@pytest.fixture(scope="module")
def site():
    return load_site(REPO / "config" / "site.yaml")


@pytest.fixture(params=sorted(SHELLS))
def shell(request):
    if shutil.which(SHELLS[request.param][0]) is None:
        pytest.skip(f"needs {request.param}")
    return SHELLS[request.param]


def render_hook(site, tmp_path: Path, fs_types: list[str], encrypted: list[str]) -> Path:
    params_dir = tmp_path / "etc-cgd-domus"
    params_dir.mkdir()
    for name in encrypted:
        (params_dir / f"{name}-local").write_text("algorithm aes-xts;\n")
    context = {
        **root_context(site),
        "local_fs_types": fs_types,
        "encrypted_locals": encrypted,
        "cgd_params_dir": str(params_dir),
    }
    text = Templates(None).render("root/etc/rc.pre-hooks", context)
    # the hook ends by running the domU's own /etc/rc: record that it got there instead
    assert text.rstrip("\n").splitlines()[-1] == EXEC_RC
    assert text.count(EXEC_RC) == 1
    hook = tmp_path / "rc.pre-hooks"
    hook.write_text(text.replace(EXEC_RC, REACHED_RC))
    assert subprocess.run(["sh", "-n", str(hook)]).returncode == 0
    return hook


def run_hook(shell, hook: Path, tmp_path: Path, stdin: str = "", **answers: str):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("fsck_ffs", "fsck_ext2fs", "cgdconfig", "mount", "stty"):
        (bin_dir / name).write_text(STAND_IN)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "calls.log"
    # /etc/rc sources the hook: run it the same way, in a shell that has just started
    result = subprocess.run(
        [*shell, "-c", '. "$HOOK"', "/etc/rc"],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        env={
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "HOOK": str(hook),
            "STAND_IN_LOG": str(log),
            **answers,
        },
    )
    calls = log.read_text().splitlines() if log.exists() else []
    return result, calls


CLEAN_FFS = "0 /dev/rxbd2a: file system is clean; not checking"
CLEAN_EXT2FS = "0 /dev/rxbd2a: clean, 120/4096 files, 900/16384 blocks"
DAMAGED_FFS = "8 /dev/rxbd2a: UNEXPECTED INCONSISTENCY; RUN fsck_ffs MANUALLY."


def test_one_file_system_type_checks_mounts_and_runs_rc(site, shell, tmp_path):
    hook = render_hook(site, tmp_path, ["ffs"], [])
    result, calls = run_hook(shell, hook, tmp_path, fsck_ffs_rxbd2a=CLEAN_FFS)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [
        "/dev/rxbd2a: file system is clean; not checking",
        "reached: /etc/rc /etc/rc",
    ]
    assert calls == [
        "fsck_ffs -p /dev/rxbd2a",
        "mount -r -t ffs /dev/xbd2a /local",
        "mount -t null /local/etc /etc",
    ]


def test_the_type_whose_check_passes_is_mounted_and_the_other_stays_quiet(site, shell, tmp_path):
    hook = render_hook(site, tmp_path, ["ext2fs", "ffs"], [])
    result, calls = run_hook(shell, hook, tmp_path, fsck_ffs_rxbd2a=CLEAN_FFS)
    assert (result.returncode, result.stderr) == (0, "")
    assert "BAD SUPER BLOCK" not in result.stdout
    assert result.stdout.splitlines()[0] == "/dev/rxbd2a: file system is clean; not checking"
    assert calls[:3] == [
        "fsck_ext2fs -p /dev/rxbd2a",
        "fsck_ffs -p /dev/rxbd2a",
        "mount -r -t ffs /dev/xbd2a /local",
    ]


def test_a_failing_check_shows_its_output_and_aborts(site, shell, tmp_path):
    hook = render_hook(site, tmp_path, ["ext2fs", "ffs"], [])
    result, calls = run_hook(shell, hook, tmp_path, fsck_ffs_rxbd2a=DAMAGED_FFS)
    assert result.returncode == 1
    assert "/dev/rxbd2a: UNEXPECTED INCONSISTENCY; RUN fsck_ffs MANUALLY." in result.stderr
    assert "fsck_ffs -p /dev/rxbd2a:" in result.stderr.splitlines()
    assert result.stderr.splitlines()[-1] == (
        "/etc/rc.pre-hooks: no file system on /dev/xbd2a checks clean (try fsck by hand).  "
        "Multiuser boot aborted."
    )
    assert "reached" not in result.stdout
    assert not [call for call in calls if call.startswith("mount")]


def test_ext2fs_domu_in_a_mixed_root(site, shell, tmp_path):
    hook = render_hook(site, tmp_path, ["ext2fs", "ffs"], [])
    result, calls = run_hook(shell, hook, tmp_path, fsck_ext2fs_rxbd2a=CLEAN_EXT2FS)
    assert result.returncode == 0
    assert calls == [
        "fsck_ext2fs -p /dev/rxbd2a",
        "mount -r -t ext2fs /dev/xbd2a /local",
        "mount -t null /local/etc /etc",
    ]


ENCRYPTED = ["www2", "www3"]
OPENS = {"PASSPHRASE": "right horse", "OPENS": "www3-local"}
CLEAN_CGD = {"fsck_ffs_rcgd1a": "0 /dev/rcgd1a: file system is clean; not checking"}


def cgd_attempts(calls: list[str]) -> list[str]:
    return [call for call in calls if call.startswith("passphrase ")]


def test_a_wrong_then_right_passphrase_opens_local_on_the_second_try(site, shell, tmp_path):
    hook = render_hook(site, tmp_path, ["ffs"], ENCRYPTED)
    result, calls = run_hook(
        shell, hook, tmp_path, stdin="right hors\nright horse\n", **OPENS, **CLEAN_CGD
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "Wrong passphrase (1 of 3).\n"
    assert result.stdout.count("Passphrase for /local: ") == 2
    assert result.stdout.splitlines()[-1] == "reached: /etc/rc /etc/rc"
    assert cgd_attempts(calls) == [
        "passphrase right hors for www2-local",
        "passphrase right hors for www3-local",
        "passphrase right horse for www2-local",
        "passphrase right horse for www3-local",
    ]
    assert calls[-3:] == [
        "fsck_ffs -p /dev/rcgd1a",
        "mount -r -t ffs /dev/cgd1a /local",
        "mount -t null /local/etc /etc",
    ]
    # echo is off while the passphrase is typed, on again after each try
    assert [c for c in calls if c.startswith("stty")] == ["stty -echo", "stty echo"] * 2


def test_three_wrong_passphrases_abort(site, shell, tmp_path):
    hook = render_hook(site, tmp_path, ["ffs"], ENCRYPTED)
    stdin = "one\ntwo\nthree\nright horse\n"
    result, calls = run_hook(shell, hook, tmp_path, stdin=stdin, **OPENS, **CLEAN_CGD)
    assert result.returncode == 1
    tried = [attempt.split()[1] for attempt in cgd_attempts(calls)]
    assert tried == ["one", "one", "two", "two", "three", "three"]  # two params each
    errors = result.stderr.splitlines()
    assert errors[:3] == [f"Wrong passphrase ({n} of 3)." for n in (1, 2, 3)]
    assert errors[-1] == (
        "/etc/rc.pre-hooks: no passphrase opened /dev/xbd2d in 3 tries.  Multiuser boot aborted."
    )
    # what the plain check said is shown too: the disk may be plain and damaged
    assert "/dev/rxbd2a: BAD SUPER BLOCK: MAGIC NUMBER WRONG" in errors
    assert not [call for call in calls if call.startswith("mount")]


def test_an_opened_disk_that_fails_its_check_shows_the_output_and_aborts(site, shell, tmp_path):
    hook = render_hook(site, tmp_path, ["ffs"], ENCRYPTED)
    damaged = "8 /dev/rcgd1a: UNEXPECTED INCONSISTENCY; RUN fsck_ffs MANUALLY."
    result, calls = run_hook(
        shell, hook, tmp_path, stdin="right horse\n", **OPENS, fsck_ffs_rcgd1a=damaged
    )
    assert result.returncode == 1
    assert "/dev/rcgd1a: UNEXPECTED INCONSISTENCY; RUN fsck_ffs MANUALLY." in result.stdout
    assert result.stderr.splitlines()[-1] == (
        "/etc/rc.pre-hooks: no file system on /dev/cgd1a checks clean (try fsck by hand).  "
        "Multiuser boot aborted."
    )
    assert "BAD SUPER BLOCK" not in result.stderr  # the plain check is beside the point now
    assert not [call for call in calls if call.startswith("mount")]


def test_a_plain_domu_in_a_root_with_encrypted_ones_is_not_asked(site, shell, tmp_path):
    hook = render_hook(site, tmp_path, ["ffs"], ENCRYPTED)
    result, calls = run_hook(shell, hook, tmp_path, fsck_ffs_rxbd2a=CLEAN_FFS)
    assert result.returncode == 0
    assert "Passphrase" not in result.stdout
    assert not cgd_attempts(calls)
