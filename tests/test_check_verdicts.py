"""`./domus check` reads an image only when it changed since its last check (or with
`--all`), keeps a failure while the image is unchanged, and leaves a running domU's
local.img alone, saying so."""

from __future__ import annotations

import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

import tasks.checks.images
import tasks.checks.verdicts
from tasks.checks.run import failure_lines, run_checks
from tasks.checks.verdicts import FILE
from tasks.site import load_site
from tests.commands import fake_xl, xl_domain
from tests.sites import REPO, Site


@pytest.fixture
def site(tmp_path, monkeypatch) -> Site:
    site = Site(tmp_path / "site")
    site.build()
    # no xl on PATH: nothing runs, as on a build host
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    return site


@pytest.fixture
def reads(monkeypatch) -> list[str]:
    """The images check_image opens, as paths below images/, in order."""
    opened: list[str] = []
    real = tasks.checks.images.check_image

    def counted(path, *args, **kwargs):
        opened.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(tasks.checks.images, "check_image", counted)
    # the images were built a moment ago: kept all the same, this is not about the clock
    monkeypatch.setattr(tasks.checks.verdicts, "RACY_SECONDS", 0)
    monkeypatch.setattr(tasks.checks.verdicts, "RACY_TICKS", 0)
    return opened


def images_read(site: Site, opened: list[str]) -> list[str]:
    return [str(Path(path).relative_to(site.output / "images")) for path in opened]


def test_an_unchanged_site_is_not_read_again(site, reads):
    domus_site = load_site(site.path)
    first = run_checks(domus_site)
    assert len(reads) == 1 + 2 * len(domus_site.domus)  # root.img, each local.img and pkg.img
    reads.clear()
    second = run_checks(domus_site)
    assert reads == []
    assert second == first
    verdicts = site.output / FILE
    assert stat.S_IMODE(verdicts.stat().st_mode) == 0o600
    assert not [p for p in site.output.iterdir() if p.name.startswith(f".{FILE}")]


def test_a_changed_image_is_read_again_and_all_reads_every_one(site, reads):
    domus_site = load_site(site.path)
    run_checks(domus_site)
    every = len(reads)
    reads.clear()
    os.utime(site.image("www2", "local.img"))  # as a converge's write through the file would
    run_checks(domus_site)
    assert images_read(site, reads) == ["www2/local.img"]
    reads.clear()
    run_checks(domus_site, every_image=True)
    assert len(reads) == every


def test_an_image_changed_just_before_its_check_is_read_again(site, reads, monkeypatch):
    domus_site = load_site(site.path)
    run_checks(domus_site)
    monkeypatch.setattr(tasks.checks.verdicts, "RACY_SECONDS", 2)
    monkeypatch.setattr(tasks.checks.verdicts, "RACY_TICKS", 2)
    os.utime(site.image("root.img"))  # a write in this clock tick could follow unseen
    reads.clear()
    run_checks(domus_site)
    run_checks(domus_site)
    assert images_read(site, reads) == ["root.img", "root.img"]


def test_a_failure_stays_reported_while_its_image_is_unchanged(site, reads):
    domus_site = load_site(site.path)
    image = site.image("www2", "pkg.img")
    original = image.read_bytes()[8192 : 8192 + 2048]
    with open(image, "r+b") as f:
        f.seek(8192 + 1372)
        f.write(b"\0\0\0\0")
    failed = failure_lines(run_checks(domus_site))
    assert failed and all(line.startswith("www2/pkg.img: ") for line in failed)
    reads.clear()
    assert failure_lines(run_checks(domus_site)) == failed
    assert reads == []
    with open(image, "r+b") as f:  # mended: the same bytes as before, a new ctime
        f.seek(8192)
        f.write(original)
    assert failure_lines(run_checks(domus_site)) == []
    assert images_read(site, reads) == ["www2/pkg.img"]


def test_a_running_domus_local_image_is_skipped_saying_so(site, tmp_path):
    # www1 runs under its name; another domain has db1's image attached
    env = fake_xl(
        tmp_path / "xl",
        [
            xl_domain("www1", "/elsewhere/root.img"),
            xl_domain("rescue", site.image("db1", "local.img")),
        ],
        {"www1": 60, "rescue": 60},
    )
    done = subprocess.run(
        [str(REPO / "domus"), "check", f"config={site.path}"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == [
        f"{name}/local.img: read: skipped: its domU runs (xl list): checked when it is shut down"
        for name in ("www1", "db1")
    ]


def test_an_image_the_site_now_expects_otherwise_is_read_again(site, reads):
    run_checks(load_site(site.path))
    reads.clear()
    site.data["domains"]["www2"]["local"] = {"fs": "ext2fs"}
    site.save()
    failed = failure_lines(run_checks(load_site(site.path)))
    assert images_read(site, reads) == ["www2/local.img"]
    assert failed == ["www2/local.img: file system: holds ffs, not ext2fs"]


def test_check_all_on_the_command_line_reads_every_image_again(site):
    time.sleep(2)  # the images are older than a tick of any file system's clock
    verdicts = site.output / FILE

    def checked(*args: str) -> int:
        done = subprocess.run(
            [str(REPO / "domus"), "check", *args, f"config={site.path}"],
            capture_output=True,
            text=True,
        )
        assert (done.returncode, done.stdout) == (0, ""), done.stdout + done.stderr
        return verdicts.stat().st_mtime_ns

    first = checked()
    assert checked() == first  # nothing read, nothing to write
    assert checked("--all") != first


def test_findings_that_cannot_be_kept_fail_nothing(site, reads, capsys):
    (site.output / FILE).mkdir()  # where the file would go: nothing can be renamed there
    domus_site = load_site(site.path)
    assert failure_lines(run_checks(domus_site)) == []
    assert "domus: the findings of this check are not kept: " in capsys.readouterr().err
    reads.clear()
    run_checks(domus_site)
    assert len(reads) == 1 + 2 * len(domus_site.domus)  # read again, as nothing was kept
    assert not [p for p in site.output.iterdir() if p.name.startswith(f".{FILE}")]


def test_what_a_killed_check_left_half_written_is_removed_by_the_next(site, reads):
    dead = subprocess.Popen(["true"])
    dead.wait()
    left = site.output / f".{FILE}.{dead.pid}"
    left.write_text("{")
    run_checks(load_site(site.path))
    assert not left.exists()
    assert (site.output / FILE).exists()
