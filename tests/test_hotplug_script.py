"""block-domus-cgd, the xl hotplug script that opens a dom0-encrypted local.img.

It runs on a NetBSD dom0; here it runs under sh and dash with recording stand-ins for
sysctl, vnconfig, cgdconfig, stat and the xenstore tools first on PATH, and a directory of
device nodes in place of /dev (DOMUS_DEV). Each stand-in appends its command line to a log;
xenstore-read answers from a small table, as xenstored would.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tasks.render import Templates

XPATH = "/local/domain/0/backend/vbd/7/51744"

STANDINS = {
    # hw.disknames: the configured disks, as NetBSD lists them
    "sysctl": 'echo "$DOMUS_DISKNAMES"\n',
    # a unit listed in DOMUS_BUSY is taken by someone else between the check and the call
    "vnconfig": 'case " $DOMUS_BUSY " in *" $1 "*) echo "vnconfig: $1: Device busy" >&2; '
    "exit 1 ;; esac\n",
    "cgdconfig": 'case " $DOMUS_BUSY " in *" $1 "*) exit 1 ;; esac\n'
    '[ -z "$DOMUS_BAD_KEY" ] || { echo "cgdconfig: verification failed" >&2; exit 1; }\n',
    "stat": "echo 4242\n",
    "xenstore-read": 'case $1 in */params) echo "$DOMUS_PARAMS" ;; '
    "*/domus-vnd) echo vnd2 ;; */domus-cgd) echo cgd1 ;; *) exit 1 ;; esac\n",
    "xenstore-write": "",
    "xenstore-rm": "",
}
SHELLS = [shell for shell in ("sh", "dash") if shutil.which(shell)]


@pytest.fixture
def hotplug(tmp_path: Path):
    script = tmp_path / "block-domus-cgd"
    script.write_text(Templates(None).render("xen/block-domus-cgd", {"script": str(script)}))
    script.chmod(0o755)
    bin_dir, dev = tmp_path / "bin", tmp_path / "dev"
    bin_dir.mkdir()
    dev.mkdir()
    for name, body in STANDINS.items():
        standin = bin_dir / name
        standin.write_text(f'#!/bin/sh\necho "{name} $*" >> "$DOMUS_STANDIN_LOG"\n{body}')
        standin.chmod(standin.stat().st_mode | stat.S_IXUSR)
    image, params = tmp_path / "local.img", tmp_path / "www1-local.params"
    image.write_bytes(b"")
    params.write_text("")

    def run(
        shell: str,
        state: str,
        nodes: list[str],
        disknames: str = "",
        busy: str = "",
        bad_key: bool = False,
    ) -> tuple[int, list[str], str]:
        for node in nodes:
            (dev / node).touch()
        log = tmp_path / "commands.log"
        log.unlink(missing_ok=True)
        env = {
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "DOMUS_DEV": str(dev),
            "DOMUS_STANDIN_LOG": str(log),
            "DOMUS_DISKNAMES": disknames,
            "DOMUS_BUSY": busy,
            "DOMUS_BAD_KEY": "yes" if bad_key else "",
            "DOMUS_PARAMS": f"{image},{params}",
        }
        done = subprocess.run(
            [shell, "-e", str(script), XPATH, state], env=env, capture_output=True, text=True
        )
        lines = log.read_text().splitlines() if log.exists() else []
        # the reads of the params and the hw.disknames lookups say nothing about the outcome
        ran = [line for line in lines if not line.startswith(("xenstore-read", "sysctl"))]
        return done.returncode, ran, done.stderr

    run.dev, run.image, run.params = dev, image, params  # type: ignore[attr-defined]
    return run


def attached(dev: Path, image: Path, params: Path, vnd: str, cgd: str) -> list[str]:
    return [
        f"vnconfig {vnd} {image}",
        f"cgdconfig {cgd} {dev}/{vnd}d {params}",
        f"xenstore-write {XPATH}/domus-vnd {vnd}",
        f"xenstore-write {XPATH}/domus-cgd {cgd}",
        f"stat -f %r {dev}/{cgd}d",
        f"xenstore-write {XPATH}/physical-device 4242",
        f"xenstore-write {XPATH}/hotplug-status connected",
    ]


def nodes(kind: str, *units: int) -> list[str]:
    return [f"{kind}{unit}{part}" for unit in units for part in "ad"]


@pytest.mark.parametrize("shell", SHELLS)
def test_takes_the_lowest_unit_with_a_node_that_is_not_configured(hotplug, shell):
    # vnd0 and vnd1 are configured, vnd2 has no node (MAKEDEV made 0, 1, 3 and 10);
    # hw.disknames lists only configured units, so vnd2 is not a candidate
    status, ran, _ = hotplug(
        shell,
        "2",
        nodes("vnd", 0, 1, 3, 10) + nodes("cgd", 0, 1, 2),
        disknames="wd0 vnd0 vnd1 cgd0 cgd1",
    )
    assert status == 0
    assert ran == attached(hotplug.dev, hotplug.image, hotplug.params, "vnd3", "cgd2")


@pytest.mark.parametrize("shell", SHELLS)
def test_units_are_taken_in_numeric_order_not_by_name(hotplug, shell):
    status, ran, _ = hotplug(shell, "2", nodes("vnd", 10, 9) + nodes("cgd", 11, 0), "cgd0")
    assert status == 0
    assert ran[:2] == [
        f"vnconfig vnd9 {hotplug.image}",
        f"cgdconfig cgd11 {hotplug.dev}/vnd9d {hotplug.params}",
    ]


@pytest.mark.parametrize("shell", SHELLS)
def test_a_unit_taken_meanwhile_is_skipped_for_the_next(hotplug, shell):
    status, ran, _ = hotplug(shell, "2", nodes("vnd", 0, 1) + nodes("cgd", 0, 1), busy="vnd0 cgd0")
    assert status == 0
    assert ran[:4] == [
        f"vnconfig vnd0 {hotplug.image}",
        f"vnconfig vnd1 {hotplug.image}",
        f"cgdconfig cgd0 {hotplug.dev}/vnd1d {hotplug.params}",
        f"cgdconfig cgd1 {hotplug.dev}/vnd1d {hotplug.params}",
    ]
    assert ran[4:6] == [
        f"xenstore-write {XPATH}/domus-vnd vnd1",
        f"xenstore-write {XPATH}/domus-cgd cgd1",
    ]


@pytest.mark.parametrize("shell", SHELLS)
def test_no_unit_with_a_node_left_fails_and_says_how_to_make_more(hotplug, shell):
    # vnd0 to vnd3 exist and are configured; vnd4 is listed nowhere because it has no node
    status, ran, stderr = hotplug(
        shell, "2", nodes("vnd", 0, 1, 2, 3) + nodes("cgd", 0), "vnd0 vnd1 vnd2 vnd3"
    )
    assert status == 1
    assert not any(line.startswith(("vnconfig", "cgdconfig")) for line in ran)
    assert "cd /dev && sh MAKEDEV vnd4 vnd5" in stderr
    assert ran[-1].startswith(f"xenstore-write {XPATH}/hotplug-error ")
    assert ran[-1].endswith(f"{XPATH}/hotplug-status error")


@pytest.mark.parametrize("shell", SHELLS)
def test_a_wrong_key_detaches_the_vnd_and_records_nothing(hotplug, shell):
    status, ran, stderr = hotplug(shell, "2", nodes("vnd", 0) + nodes("cgd", 0), bad_key=True)
    assert status == 1
    assert ran[:3] == [
        f"vnconfig vnd0 {hotplug.image}",
        f"cgdconfig cgd0 {hotplug.dev}/vnd0d {hotplug.params}",
        "vnconfig -u vnd0",
    ]
    assert not any("domus-vnd" in line or "domus-cgd" in line for line in ran)
    assert "a wrong key?" in stderr


@pytest.mark.parametrize("shell", SHELLS)
def test_removal_closes_the_recorded_cgd_then_the_vnd(hotplug, shell):
    status, ran, _ = hotplug(shell, "6", [])
    assert status == 0
    assert ran == ["cgdconfig -u cgd1", "vnconfig -u vnd2", f"xenstore-rm {XPATH}"]
