"""The outputs of a domU taken out of the site: listed by `./domus status`, retired by
`./domus gc` as a dated archive that keeps its local.img, never deleted."""

from __future__ import annotations

import hashlib
import json
import stat
import subprocess
import sys

import pytest

from tests.commands import domus, fake_xl, xl_domain
from tests.sites import REPO, Site


@pytest.fixture
def site(tmp_path) -> Site:
    site = Site(tmp_path / "site")
    site.build()
    return site


def without_db1(site: Site) -> None:
    del site.data["domains"]["db1"]
    site.save()


def status_rows(site: Site) -> list[dict]:
    done = subprocess.run(
        [sys.executable, "-m", "tasks.cli", "status", "--json", f"config={site.path}"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)["items"]


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_status_lists_what_is_left_of_a_domu_the_site_no_longer_has(site):
    assert not [row for row in status_rows(site) if row["action"] == "retire (gc)"]
    without_db1(site)
    (row,) = [row for row in status_rows(site) if row["action"] == "retire (gc)"]
    assert row["domain"] == "db1"
    assert row["image"] == "images/db1/, xen/db1.cfg, pkg:db1 generations"
    # a build leaves them, and the status that follows it (from the build's record) still
    # names them
    site.build()
    assert site.image("db1", "local.img").exists()
    retiring = [row["domain"] for row in status_rows(site) if row["action"] == "retire (gc)"]
    assert retiring == ["db1"]


def test_gc_retires_them_into_a_private_dated_archive_keeping_local_img(site):
    local = site.image("db1", "local.img")
    state, config = digest(local), (site.output / "xen" / "db1.cfg").read_text()
    pkg_generations = set((site.image("generations", "pkg")).iterdir())
    without_db1(site)
    site.build()
    run = domus(site, "gc")
    assert run.returncode == 0, run.stderr
    (archive,) = site.output.joinpath("images").glob("db1.retired-*")
    assert f"retired db1: {archive} (db1.cfg, local.img, local.img.inputs.json); " in run.stdout
    assert "removed its swap.img and pkg.img" in run.stdout
    assert "retired pkg:db1" in run.stdout
    assert stat.S_IMODE(archive.stat().st_mode) == 0o700
    assert digest(archive / "local.img") == state
    assert (archive / "db1.cfg").read_text() == config
    for path in archive.iterdir():
        assert stat.S_IMODE(path.lstat().st_mode) == 0o600, path
    assert not site.image("db1").exists()
    assert not (site.output / "xen" / "db1.cfg").exists()
    assert not site.image("generations", "active", "pkg.db1").exists()
    # the other domUs' pkg generations stay
    assert set(site.image("generations", "pkg").iterdir()) <= pkg_generations
    assert site.image("www1", "pkg.img").resolve().exists()
    assert not [row for row in status_rows(site) if row["action"] == "retire (gc)"]
    again = domus(site, "gc")
    assert "retired" not in again.stdout
    assert list(site.output.joinpath("images").glob("db1.retired-*")) == [archive]


def test_gc_leaves_a_domu_that_still_runs_and_one_it_is_told_to_keep(site, tmp_path):
    before = digest(site.image("db1", "local.img"))
    without_db1(site)
    env = fake_xl(tmp_path / "bin", [xl_domain("db1", site.image("db1", "local.img"))], {})
    running = domus(site, "gc", env=env)
    assert running.returncode == 0, running.stderr
    assert "db1 runs: not retired until it is shut down" in running.stdout
    kept = domus(site, "gc", "--keep", "db1")
    assert kept.returncode == 0, kept.stderr
    assert "retired" not in kept.stdout
    assert digest(site.image("db1", "local.img")) == before
    assert (site.output / "xen" / "db1.cfg").exists()
    assert not list(site.output.joinpath("images").glob("db1.retired-*"))
