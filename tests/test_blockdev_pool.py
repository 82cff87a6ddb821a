"""The pool of units: first free unit without blocking, a wait with a timeout when all are
taken, never more holders than units. Each job is its own process, as under `doit -n`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tasks import xl
from tasks.blockdev.holders import domain_running
from tasks.blockdev.loop import Loop
from tasks.blockdev.units import unit_from_pool
from tasks.run.errors import DomusError
from tests.commands import fake_xl, xl_domain
from tests.conftest import REPO

HOLD = """
import json, sys, time
from pathlib import Path
from tasks.blockdev.loop import Loop
from tasks.blockdev.units import unit_from_pool
locks, count, seconds, log = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
with unit_from_pool(locks, Loop(), count, 60) as unit:
    start = time.monotonic()
    Path(log + f".{unit}.held").touch()
    time.sleep(seconds)
    end = time.monotonic()
with open(log, "a") as out:
    out.write(json.dumps([start, end, unit]) + "\\n")
"""


def holder(locks: Path, count: int, seconds: float, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", HOLD, str(locks), str(count), str(seconds), str(log)],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path: Path) -> None:
    deadline = time.monotonic() + 30
    while not path.exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_six_jobs_on_two_units_hold_at_most_two_and_use_both(tmp_path):
    log = tmp_path / "spans"
    jobs = [holder(tmp_path / "locks", 2, 0.3, log) for _ in range(6)]
    for job in jobs:
        assert job.wait(timeout=60) == 0, job.stderr.read()
    spans = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(spans) == 6
    assert {unit for _, _, unit in spans} == {0, 1}
    events = sorted([(start, 1) for start, _, _ in spans] + [(end, -1) for _, end, _ in spans])
    depth = [sum(step for _, step in events[: index + 1]) for index in range(len(events))]
    assert max(depth) == 2
    assert (tmp_path / "locks" / "loop-unit0.lock").exists()  # one lock file per unit


def test_a_job_takes_the_first_free_unit_without_waiting(tmp_path, capsys):
    log = tmp_path / "spans"
    busy = holder(tmp_path / "locks", 1, 5, log)
    wait_for(Path(f"{log}.0.held"))
    start = time.monotonic()
    with unit_from_pool(tmp_path / "locks", Loop(), 3, 10) as unit:
        assert unit == 1
    assert time.monotonic() - start < 1
    assert "waiting" not in capsys.readouterr().err
    busy.kill()
    busy.wait()


def test_when_all_units_are_taken_a_job_waits_then_gets_one(tmp_path, capsys):
    log = tmp_path / "spans"
    busy = holder(tmp_path / "locks", 1, 1.0, log)
    wait_for(Path(f"{log}.0.held"))
    start = time.monotonic()
    with unit_from_pool(tmp_path / "locks", Loop(), 1, 30) as unit:
        assert unit == 0
        assert time.monotonic() - start > 0.8  # only once the holder's second was over
    assert "all 1 loop units are in use" in capsys.readouterr().err
    assert busy.wait() == 0


def test_waiting_ends_after_blockdev_wait_with_a_clear_message(tmp_path):
    log = tmp_path / "spans"
    busy = [holder(tmp_path / "locks", 2, 10, log) for _ in range(2)]
    wait_for(Path(f"{log}.0.held"))
    wait_for(Path(f"{log}.1.held"))
    start = time.monotonic()
    with pytest.raises(DomusError) as raised, unit_from_pool(tmp_path / "locks", Loop(), 2, 0.5):
        pass
    assert 0.5 <= time.monotonic() - start < 5
    assert "no free loop unit after waiting 0.5 s; all 2 are in use" in raised.value.message
    assert "blockdev.units" in (raised.value.hint or "")
    for job in busy:
        job.kill()
        job.wait()


def test_a_killed_holder_lets_go_of_its_unit_at_once(tmp_path):
    log = tmp_path / "spans"
    busy = holder(tmp_path / "locks", 1, 60, log)
    wait_for(Path(f"{log}.0.held"))
    busy.kill()
    busy.wait()
    with unit_from_pool(tmp_path / "locks", Loop(), 1, 0) as unit:
        assert unit == 0


def test_a_running_domain_is_asked_of_xl_on_a_dom0_only(tmp_path, monkeypatch):
    env = fake_xl(tmp_path / "xl", [xl_domain("www1", "/images/root.img")], {"www1": 60})
    monkeypatch.setenv("PATH", env["PATH"])
    monkeypatch.setattr(xl, "is_dom0", lambda: True)
    assert (domain_running("www1"), domain_running("www2")) == (True, False)
    monkeypatch.setattr(xl, "is_dom0", lambda: False)
    assert domain_running("www1") is None


def test_an_xl_that_fails_on_a_dom0_says_what_it_cannot_tell(tmp_path, monkeypatch):
    (tmp_path / "xl").write_text("#!/bin/sh\necho 'xl: permission denied' >&2\nexit 1\n")
    (tmp_path / "xl").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.setattr(xl, "is_dom0", lambda: True)
    with pytest.raises(DomusError, match=r"cannot tell whether www1 is running: `xl list -l` "):
        domain_running("www1")
