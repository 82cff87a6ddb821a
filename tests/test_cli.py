"""The operator's view: bad config stops everything, one run at a time, ./domus itself."""

from __future__ import annotations

import subprocess
import sys
import time

from filelock import FileLock

from tests.conftest import REPO
from tests.sites import Site


def test_bad_config_exits_2_names_file_line_key_and_writes_nothing(tmp_path):
    site = Site(tmp_path / "site")
    site.data["domains"]["www1"]["memory"] = "lots"
    site.data["domains"]["Bad_Name"] = {}
    site.save()
    run = site.doit()
    assert run.returncode == 78
    assert f"{site.path}:" in run.stderr
    assert "domains.www1.memory: expected a size such as 256m or 1g, got 'lots'" in run.stderr
    assert "domains.Bad_Name" in run.stderr
    assert "nothing was built or changed" in run.stderr
    assert not site.output.exists()


def test_bad_config_after_a_build_changes_nothing(tmp_path):
    site = Site(tmp_path / "site")
    site.build()
    before = {p: p.stat().st_mtime_ns for p in site.output.rglob("*") if p.is_file()}
    site.data["root"]["size"] = "12q"
    site.save()
    run = site.doit()
    assert run.returncode == 78
    assert "root.size" in run.stderr
    after = {p: p.stat().st_mtime_ns for p in site.output.rglob("*") if p.is_file()}
    assert after == before


def test_a_second_run_exits_at_once_while_the_lock_is_held(tmp_path):
    site = Site(tmp_path / "site")
    lock = FileLock(str(site.output / "locks" / "run.lock"))
    (site.output / "locks").mkdir(parents=True)
    with lock:
        start = time.monotonic()
        run = site.doit()
        elapsed = time.monotonic() - start
    assert run.returncode == 75
    assert "another run holds the lock" in run.stderr
    assert elapsed < 10
    assert not (site.output / "images").exists()


def test_two_concurrent_runs_one_builds_one_refuses(tmp_path):
    site = Site(tmp_path / "site")
    command = [
        sys.executable,
        "-m",
        "doit",
        "-f",
        str(REPO / "dodo.py"),
        "-d",
        str(REPO),
        f"config={site.path}",
    ]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    codes = sorted([first.wait(), second.wait()])
    assert codes == [0, 75]
    assert site.image("root.img").exists()


def test_list_does_not_need_the_lock(tmp_path):
    site = Site(tmp_path / "site")
    (site.output / "locks").mkdir(parents=True)
    with FileLock(str(site.output / "locks" / "run.lock")):
        run = site.doit("list")
    assert run.returncode == 0
    assert "root" in run.stdout


def test_domus_help_and_unknown_command():
    done = subprocess.run([str(REPO / "domus"), "help"], capture_output=True, text=True)
    assert done.returncode == 0
    assert "./domus build" in done.stdout
    done = subprocess.run([str(REPO / "domus"), "frobnicate"], capture_output=True, text=True)
    assert done.returncode == 2
    assert "unknown command 'frobnicate'" in done.stderr


def test_parallel_build_makes_the_same_images(tmp_path):
    serial, parallel = Site(tmp_path / "serial"), Site(tmp_path / "parallel")
    serial.build()
    assert parallel.build("-n", "2").ran == serial.build("--always-execute").ran
    for name in ["www1", "www2", "db1"]:
        for image in ["local.img", "pkg.img", "swap.img"]:
            assert (
                parallel.image(name, image).stat().st_size
                == serial.image(name, image).stat().st_size
            )
    assert parallel.build().ran == set()


def test_domus_reprovision_through_the_script(tmp_path):
    site = Site(tmp_path / "site")
    site.build()
    old = site.image("www1", "local.img").read_bytes()
    # A relative config= is relative to where the operator stands, not to the repository.
    done = subprocess.run(
        [str(REPO / "domus"), "reprovision", "www1", "config=site/site.yaml"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert ".  local:www1" in done.stdout
    assert [p.read_bytes() for p in site.image("www1").glob("local-*.img")] == [old]
    done = subprocess.run(
        [str(REPO / "domus"), "reprovision", "nosuch", f"config={site.path}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 78
    assert "no domain named nosuch" in done.stderr
