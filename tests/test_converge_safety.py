"""A converge is all or nothing, keeps a bounded number of backups, and leaves no
plaintext of an encrypted image behind: not on a full disk, not after a SIGKILL."""

from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tasks.cgd.params import parse
from tasks.cgd.stream import decrypt_file
from tasks.converge.plan import pruned_backups
from tests.conftest import REPO
from tests.image_reader import ImageReader
from tests.mounting import (
    fsck_clean,
    loop_mounted,
    loops_under,
    needs_root,
    release_everything_under,
    sha,
)
from tests.netbsd_rules import assert_netbsd_accepts
from tests.sealed_job import stopped_at
from tests.sites import Run, Site
from tests.test_converge import assert_nothing_attached, ext2_site

BIG = 1 << 20  # a managed file of 1 MiB


@pytest.fixture(autouse=True)
def nothing_left_behind(tmp_path):
    yield
    release_everything_under(tmp_path)


def domus(site: Site, *args: str) -> Run:
    done = subprocess.run(
        [sys.executable, "-m", "tasks.cli", *args, f"config={site.path}"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def set_round(site: Site, name: str, value: int) -> None:
    site.data["domains"][name].setdefault("rc_conf", {})["domus_round"] = str(value)
    site.save()


def big_template(site: Site) -> None:
    """A managed file of 1 MiB in every local image."""
    templates = site.directory / "templates"
    (templates / "local" / "etc").mkdir(parents=True, exist_ok=True)
    (templates / "local" / "etc" / "big.conf").write_text(("x" * 63 + "\n") * (BIG // 64))
    site.data["templates"] = "templates"
    site.save()


def test_backups_beyond_keep_are_the_oldest_and_a_later_one_of_the_same_second_is_newer():
    names = {
        "rc.conf",
        "rc.conf.domus-20260101T000000",
        "rc.conf.domus-20260101T000000.2",
        "rc.conf.domus-20260101T000000.10",
        "rc.conf.domus-20250101T000000",
        "rc.conf.orig",
        "xrc.conf.domus-20200101T000000",
    }
    assert pruned_backups("rc.conf", names, 2) == [
        "rc.conf.domus-20250101T000000",
        "rc.conf.domus-20260101T000000",
    ]
    assert pruned_backups("rc.conf", names, 5) == []
    assert len(pruned_backups("rc.conf", names, 0)) == 4


@needs_root
@pytest.mark.parametrize("backend", ["loop", "none"], ids=["mounted", "debugfs"])
def test_backups_are_pruned_to_converge_keep_backups(tmp_path, backend):
    site = ext2_site(tmp_path / "site", ("www1",), mount=backend != "none", backend=backend)
    site.data.setdefault("converge", {})["keep_backups"] = 2
    for value in range(1, 5):
        set_round(site, "www1", value)
        run = domus(site, "converge", "www1")
        assert run.returncode == 0, run.stderr
    image = site.image("www1", "local.img")
    with loop_mounted(image, readonly=True) as top:
        kept = sorted((top / "etc").glob("rc.conf.domus-*"))
        rounds = sorted(
            line for path in kept for line in path.read_text().splitlines() if "domus_round" in line
        )
    # the backups hold rc.conf before rounds 1..4: the two newest are of rounds 2 and 3
    assert rounds == ["domus_round=2", "domus_round=3"]
    assert "removed backups beyond converge.keep_backups (2)" in run.stderr
    assert fsck_clean(image)
    assert_netbsd_accepts(image, "ext2fs")
    assert_nothing_attached(site)


def fill_image(image: Path, leave: int) -> None:
    with loop_mounted(image) as top:
        st = os.statvfs(top)
        filler = top / "var" / "filler"
        with open(filler, "wb") as out:
            out.write(b"\xa5" * (st.f_bavail * st.f_frsize - leave))


@needs_root
@pytest.mark.parametrize("backend", ["loop", "none"], ids=["mounted", "debugfs"])
def test_a_full_image_is_refused_before_anything_is_written(tmp_path, backend):
    site = ext2_site(tmp_path / "site", ("www1",), mount=backend != "none", backend=backend)
    image = site.image("www1", "local.img")
    fill_image(image, leave=256 << 10)
    before = sha(image)
    big_template(site)
    run = domus(site, "converge", "www1")
    assert run.returncode == 1, run.stderr
    # the new template, and the record of what domus wrote, which names it
    found = (
        r"writes 10\d\dk into it \(/etc/big.conf, /var/db/domus/managed\), "
        r"and its file system has \d+k free"
    )
    assert re.search(found, run.stderr), run.stderr
    assert "free; nothing was changed" in run.stderr
    assert "Traceback" not in run.stderr
    assert sha(image) == before  # no backup, no half-written file: the very same bytes
    assert [p.name for p in image.parent.iterdir() if p.name.startswith(".")] == []
    assert_nothing_attached(site)


@needs_root
def test_a_full_host_disk_is_refused_and_the_image_is_unchanged(tmp_path):
    site = ext2_site(tmp_path / "site", ("www1",), mount=True)
    image = site.image("www1", "local.img")
    directory = image.parent
    saved = tmp_path / "saved"
    shutil.copytree(directory, saved)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(directory)], check=True)
    try:
        for path in saved.iterdir():
            subprocess.run(["cp", "-a", "--sparse=always", str(path), str(directory)], check=True)
        big_template(site)
        st = os.statvfs(directory)
        filler = directory / "filler"
        with open(filler, "wb") as out:
            out.write(b"\0" * (st.f_bavail * st.f_frsize - (256 << 10)))
        before = sha(image)
        run = domus(site, "converge", "www1")
        assert run.returncode == 1, run.stderr
        assert f"free in {directory}, which has" in run.stderr
        assert "nothing was changed" in run.stderr
        assert "Traceback" not in run.stderr and "OSError" not in run.stderr
        assert sha(image) == before
        assert not [p for p in directory.iterdir() if "partial" in p.name]
        assert loops_under(site.directory) == []
        filler.unlink()  # room again: the same converge goes through, whole
        run = domus(site, "converge", "www1")
        assert run.returncode == 0, run.stderr
        assert fsck_clean(image)
        assert_netbsd_accepts(image, "ext2fs")
        with loop_mounted(image, readonly=True) as top:
            assert len((top / "etc" / "big.conf").read_bytes()) == BIG
            assert not list(top.rglob("*.domus-new"))
        assert not [p for p in directory.iterdir() if "partial" in p.name]
        assert loops_under(site.directory) == []
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=True)
    assert_nothing_attached(site)


# -- plaintext of encrypted images ------------------------------------------------------


@pytest.fixture(scope="module")
def sealed_site(tmp_path_factory) -> Site:
    site = Site(tmp_path_factory.mktemp("sealed-kill"))
    site.data["domains"] = {"db1": site.data["domains"]["db1"]}
    site.data["domains"]["db1"]["local"]["encrypt"] = "dom0"
    site.save()
    site.build()
    return site


def plaintext_left(site: Site) -> list[Path]:
    top = site.image("db1")
    return [
        p for p in top.iterdir() if ".plain" in p.name or p.name.endswith((".part", ".partial"))
    ]


def opened(site: Site, tmp_path: Path) -> ImageReader:
    params = parse((site.directory / "keys" / "db1-local.params").read_text())
    plain = tmp_path / "db1.plain"
    decrypt_file(params, site.image("db1", "local.img"), plain)
    assert_netbsd_accepts(plain, "ext2fs")
    return ImageReader(plain, "ext2fs")


@pytest.mark.parametrize("point", ["decrypted", "converged", "sealed"])
def test_sigkill_mid_sealed_converge_keeps_the_image_and_the_next_build_removes_plaintext(
    sealed_site, tmp_path, point
):
    site = sealed_site
    image = site.image("db1", "local.img")
    set_round(site, "db1", int(time.time() * 1000) % 1000000)
    wanted = f"domus_round={site.data['domains']['db1']['rc_conf']['domus_round']}"
    before = sha(image)
    mark = tmp_path / "mark"
    process = stopped_at(site.path, "db1", mark, point)
    plain = next(image.parent.glob(".plaintext.*"))
    assert stat.S_IMODE(plain.stat().st_mode) == 0o700
    assert stat.S_IMODE((plain / "plain.img").stat().st_mode) == 0o600
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert plain.exists()  # what a SIGKILL leaves: nothing of the job ran after it
    assert sha(image) == before  # killed before the rename: the image is the old one
    run = site.build()
    assert f"removed {plain}, plaintext a killed run left" in run.stderr
    assert plaintext_left(site) == []
    assert wanted in opened(site, tmp_path).text("etc/rc.conf").splitlines()
    assert site.build().ran == set()


def test_any_command_removes_the_plaintext_of_a_dead_process(sealed_site):
    site = sealed_site
    dead = subprocess.Popen(["true"])
    dead.wait()
    left = site.image("db1", f".plaintext.{dead.pid}")
    left.mkdir(mode=0o700)
    (left / "plain.img").write_bytes(b"secret")
    mine = site.image("db1", f".plaintext.{os.getpid()}")  # a live process's: left alone
    mine.mkdir(mode=0o700)
    try:
        run = domus(site, "check", "db1")
        assert f"removed {left}, plaintext a killed run left" in run.stderr
        assert not left.exists()
        assert mine.exists()
    finally:
        shutil.rmtree(mine)


def test_the_plaintext_of_a_first_build_is_private_from_its_creation(tmp_path, monkeypatch):
    from tasks.cgd.params import generate
    from tasks.images import encrypted

    seen = {}

    def write_image(tree, fs, size, dest, **shape):
        with open(dest, "wb") as out:  # as the writers create it: with the process's umask
            out.truncate(size)
        seen["file"] = stat.S_IMODE(dest.stat().st_mode)
        seen["dir"] = stat.S_IMODE(dest.parent.stat().st_mode)
        seen["path"] = dest

    monkeypatch.setattr(encrypted, "write_image", write_image)
    old = os.umask(0o022)
    try:
        dest = tmp_path / ".local.img.partial"
        encrypted.write_encrypted_image(
            None, "ext2fs", 1 << 20, dest, generate("aes-xts", 256), None
        )
    finally:
        os.umask(old)
    assert (seen["file"], seen["dir"]) == (0o600, 0o700)
    assert not seen["path"].exists() and not seen["path"].parent.exists()
    assert [p.name for p in tmp_path.iterdir()] == [dest.name]


def test_every_build_removes_what_a_killed_run_left_half_written(sealed_site):
    site = sealed_site
    generation = site.image("generations", "root", ".0123456789ab.partial")
    generation.mkdir(parents=True)
    (generation / "root.img").write_bytes(b"half")
    leftovers = [
        site.image("db1", ".local.img.partial"),
        site.image("db1", "..local.img.partial.k3j2.part"),
        site.image("db1", ".local.img.plain"),  # where older versions kept the plaintext
    ]
    for path in leftovers:
        path.write_bytes(b"half")
    run = site.build()
    for path in [generation, *leftovers]:
        assert not path.exists()
        assert f"removed {path}, half written by a killed run" in run.stderr
    assert site.image("db1", "local.img").exists()
