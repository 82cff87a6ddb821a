"""Every benchmark in bench/ still runs: each at its --smoke size (a run, not a timing),
exiting 0 with its table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sites import REPO

BENCH = REPO / "bench"
# bench/deploy.py has a --smoke too (one domU a host), but Ansible's runs against its three
# sshd stand-ins take minutes whatever the size: tests/test_deploy.py covers that path
SLOW = {"deploy.py"}


def smoke(script: str, *args: str, tmp_path: Path) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCH / script), "--smoke", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "\n|---" in done.stdout, done.stdout  # a Markdown table
    return done.stdout


def test_every_script_is_smoked_here():
    scripts = {path.name for path in BENCH.glob("*.py")}
    smoked = {"check.py", "cgd_speed.py", "ffs_rewrite.py", "run.py", "converge.py"}
    assert scripts == smoked | SLOW


def test_check(tmp_path):
    out = smoke("check.py", "--out", str(tmp_path / "out"), tmp_path=tmp_path)
    assert "| `check --all`, peak RSS |" in out


def test_cgd_speed(tmp_path):
    smoke("cgd_speed.py", tmp_path=tmp_path)


def test_ffs_rewrite(tmp_path):
    smoke("ffs_rewrite.py", "--dir", str(tmp_path), tmp_path=tmp_path)


def test_run(tmp_path):
    smoke("run.py", "--out", str(tmp_path / "out"), tmp_path=tmp_path)


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="attaches loop devices: needs root")
def test_converge(tmp_path):
    smoke("converge.py", "--out", str(tmp_path / "out"), tmp_path=tmp_path)
