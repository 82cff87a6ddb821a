"""`./domus nightly`: silent when nothing changed, a summary when something did, a non-zero
status on failure, one run at a time, and a kill at any moment costs nothing but time."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from filelock import FileLock

from tests.commands import active, change_root_template, domus, fake_xl, generations, nightly
from tests.image_reader import ImageReader
from tests.sites import REPO, Site


@pytest.fixture
def site(tmp_path) -> Site:
    site = Site(tmp_path / "site")
    run = nightly(site)
    assert run.returncode == 0, run.stdout + run.stderr
    return site


def logs(site: Site) -> list[Path]:
    return sorted((site.output / "logs").glob("nightly-*.log"))


def test_first_nightly_builds_everything_and_says_so(tmp_path):
    site = Site(tmp_path / "site")
    run = nightly(site)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("domus nightly: done in ")
    assert f"root: generation {active(site)} active; built in " in run.stdout
    assert "also ran: local:www1" in run.stdout
    assert run.stderr == ""
    assert len(logs(site)) == 1


def test_nightly_with_nothing_to_do_prints_nothing_and_exits_0(site):
    start = time.monotonic()
    run = nightly(site)
    elapsed = time.monotonic() - start
    assert (run.returncode, run.stdout, run.stderr) == (0, "", "")
    assert elapsed < 5
    log = logs(site)[-1].read_text()
    assert "--- doit exit status 0" in log
    assert "domus nightly: done in" in log
    # each phase says how long it took, so a slow night shows where its time went
    for name in ("leftovers", "build", "check", "garbage collection"):
        assert re.search(rf"^--- {name}: \d+\.\d s$", log, re.M), (name, log)
    assert len(logs(site)) == 2


def test_nightly_after_a_changed_input_rebuilds_and_activates(site):
    first = active(site)
    change_root_template(site, "# nightly change\n")
    run = nightly(site)
    assert run.returncode == 0, run.stderr
    second = active(site)
    assert second != first
    assert f"root: generation {second} active, was {first}; built in " in run.stdout
    assert "changed: file template " in run.stdout and "rc.pre-hooks" in run.stdout
    assert "on disk" in run.stdout
    text = ImageReader(site.image("root.img"), "ffs").text("etc/rc.pre-hooks")
    assert text.endswith("# nightly change\n")
    assert "root: generation" in logs(site)[-1].read_text()
    assert nightly(site).stdout == ""


def test_nightly_leaves_a_pinned_image_and_says_what_it_built(site):
    first = active(site)
    assert domus(site, "pin", "root").returncode == 0
    change_root_template(site, "# pinned\n")
    run = nightly(site)
    assert run.returncode == 0, run.stderr
    assert active(site) == first
    assert f"not activated, pinned to {first}" in run.stdout


def test_nightly_collects_old_generations(site):
    site.data["generations"] = {"keep": 1}
    site.save()
    first = active(site)
    change_root_template(site, "# newer\n")
    run = nightly(site)
    assert run.returncode == 0, run.stderr
    assert "garbage collection: removed 1 generation (" in run.stdout
    assert f"root {first}" in run.stdout
    assert generations(site, "root") == {active(site)}


def test_a_failure_exits_non_zero_and_tells_why(site):
    first = active(site)
    site.data["root"]["kernel"] = "http://127.0.0.1:9/netbsd-XEN3_DOMU"  # nothing listens
    site.save()
    run = nightly(site)
    assert run.returncode != 0
    assert run.stdout == ""
    assert "domus nightly: FAILED" in run.stderr
    assert "fetch:netbsd-XEN3_DOMU" in run.stderr
    assert "http://127.0.0.1:9/SHA512: cannot fetch the SHA512 file" in run.stderr
    assert active(site) == first


def test_an_image_netbsd_would_refuse_is_reported(tmp_path):
    site = Site(tmp_path / "site")
    no_domu_running = fake_xl(tmp_path / "bin", [], {})
    assert nightly(site, no_domu_running).returncode == 0
    image = site.image("www2", "local.img")  # FFS: its first cylinder group at 24 KiB
    with open(image, "r+b") as f:
        f.seek(24576 + 4)
        f.write(b"\0\0\0\0")
    run = nightly(site, no_domu_running)
    assert run.returncode == 1
    assert "./domus check: 1 of " in run.stderr
    assert (
        "www2/local.img: ffs superblock and cylinder groups: CG 0: BAD MAGIC NUMBER" in run.stderr
    )


def test_nightly_exits_at_once_while_another_run_holds_the_lock(site):
    with FileLock(str(site.output / "locks" / "run.lock")):
        start = time.monotonic()
        run = nightly(site)
        elapsed = time.monotonic() - start
    assert run.returncode == 75
    assert "another run holds the lock" in run.stderr
    assert run.stdout == ""
    assert elapsed < 5
    assert len(logs(site)) == 1


def test_two_nightlies_at_once_one_runs_one_refuses(tmp_path):
    site = Site(tmp_path / "site")
    command = [sys.executable, "-m", "tasks.nightly", f"config={site.path}"]
    runs = [
        subprocess.Popen(
            command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    results = sorted((run.wait(), run.stderr.read()) for run in runs)
    for run in runs:
        run.stdout.close()
        run.stderr.close()
    assert [code for code, _ in results] == [0, 75]
    assert "another run holds the lock" in results[1][1]
    assert site.image("root.img").exists()


def slow_makefs(directory: Path, marker: Path) -> dict[str, str]:
    """A makefs that says it started, then takes its time: a build to kill halfway."""
    directory.mkdir()
    script = directory / "makefs"
    script.write_text(f"#!/bin/sh\ntouch '{marker}'\nsleep 60\nexec /usr/sbin/makefs \"$@\"\n")
    script.chmod(0o755)
    return {**os.environ, "PATH": f"{directory}:{os.environ['PATH']}"}


def test_sigkill_during_nightly_keeps_the_previous_generation_and_a_rerun_completes(site, tmp_path):
    first = active(site)
    old_bytes = site.image("root.img").read_bytes()
    change_root_template(site, "# killed\n")
    marker = tmp_path / "makefs-started"
    env = slow_makefs(tmp_path / "bin", marker)
    run = subprocess.Popen(
        [sys.executable, "-m", "tasks.nightly", f"config={site.path}"],
        cwd=REPO,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert time.monotonic() < deadline and run.poll() is None, "the build never started"
        time.sleep(0.05)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()

    assert active(site) == first
    assert site.image("root.img").read_bytes() == old_bytes
    assert generations(site, "root") == {first}
    assert list(site.image("generations", "root").glob(".*.partial"))  # the killed build's

    again = nightly(site)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "left by a run that was killed" in again.stdout
    assert active(site) != first
    assert not list(site.image("generations", "root").glob(".*"))
    text = ImageReader(site.image("root.img"), "ffs").text("etc/rc.pre-hooks")
    assert text.endswith("# killed\n")


@pytest.mark.parametrize("delay", [0.3, 0.9])
def test_sigkill_at_any_moment_leaves_a_complete_active_generation(site, delay):
    first = active(site)
    change_root_template(site, f"# killed after {delay} s\n")
    site.data["domains"]["www1"]["pkg"]["size"] = "12m"
    site.save()
    run = subprocess.Popen(
        [sys.executable, "-m", "tasks.nightly", f"config={site.path}"],
        cwd=REPO,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(delay)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    images = {"root": site.image("root.img"), "pkg.www1": site.image("www1", "pkg.img")}
    for key, image in images.items():
        generation = site.image("generations", "active", key).resolve()
        assert (generation / "generation.json").is_file()
        assert image.resolve().parent == generation
        assert image.stat().st_size in (16 << 20, 8 << 20, 12 << 20)
    assert active(site) in generations(site, "root")
    again = nightly(site)
    assert again.returncode == 0, again.stdout + again.stderr
    assert active(site) != first
    assert site.image("www1", "pkg.img").stat().st_size == 12 << 20
    assert nightly(site).stdout == ""
