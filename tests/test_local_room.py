"""Room in a local.img: the inodes newfs would give it (or local.density's), a larger
local.size or another density given to an existing image with every entry kept, a smaller
one refused, and `./domus check` warning of an image about to fill up.

Counts are computed from NetBSD's own rules (sbin/newfs/newfs.c: fragment size by file
system size, one inode per NFPI = 4 fragments; sbin/newfs/mkfs.c: inodes per group =
roundup(howmany(fpg, fragsperinode), INOPB)), and every image is held to NetBSD's
superblock and cylinder-group rules and read back with The Sleuth Kit.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
from pathlib import Path

import pytest

from tasks.checks import Finding
from tasks.checks.room import Room, ext2_room, ffs_room, room_finding, room_problem
from tasks.checks.run import report
from tasks.converge.rewrite import Staged, kept_images
from tasks.images.ffs_reader import FfsImage
from tests.image_reader import ImageReader
from tests.mounting import sha
from tests.netbsd_rules import assert_netbsd_accepts
from tests.sites import Site
from tests.test_converge_rewrite import described
from tests.test_status import built, domus, status

MiB = 1 << 20
INOPB = {4096: 32, 8192: 64, 16384: 128}  # UFS1 inodes (128 bytes) in a block


def newfs_fsize(size: int) -> int:
    """newfs.c: fragments of 512 bytes below 20 MiB, 1024 below 1000 MiB, else 2048."""
    sectors = size // 512
    return 512 if sectors < 20 * 1024 * 2 else 1024 if sectors < 1000 * 1024 * 2 else 2048


def expected_inodes(image: Path, density: int) -> int:
    """mkfs.c's inode count for the image's groups at `density` bytes per inode."""
    with FfsImage(image) as ffs:
        p = ffs.params
    fragsperinode = max(density // p.fsize, 1)
    per_group = -(-p.fpg // fragsperinode)
    inopb = INOPB[p.bsize]
    return p.ncg * (-(-per_group // inopb) * inopb)


def ffs_inodes(image: Path) -> tuple[int, int]:
    with FfsImage(image) as ffs:
        return ffs.params.inodes, ffs.free_inodes()


@pytest.fixture
def site(tmp_path) -> Site:
    return built(tmp_path)


def test_a_fresh_ffs_local_img_has_the_inodes_newfs_gives_its_size(site):
    image = site.image("www1", "local.img")  # 16m, ffs in the example site
    with FfsImage(image) as ffs:
        p = ffs.params
    assert (p.size, p.fsize, p.bsize) == (16 * MiB, newfs_fsize(16 * MiB), 4096)
    inodes, free = ffs_inodes(image)
    assert inodes == expected_inodes(image, 4 * p.fsize)
    assert inodes >= 16 * MiB // (4 * 512) == 8192  # thousands, not the files' few dozen
    assert free > 0.99 * inodes
    assert_netbsd_accepts(image, "ffs")
    # root.img and pkg.img, which no domU writes, keep an inode table sized to their files
    root_inodes, root_free = ffs_inodes(site.output / "images" / "root.img")
    assert root_free < root_inodes // 2


def test_local_density_overrides_newfs_on_ffs_and_ext2fs(tmp_path):
    site = Site(tmp_path / "site")
    site.data["domains"]["www1"]["local"] = {"density": "16k"}
    site.data["domains"]["db1"]["local"]["density"] = "16k"
    site.save()
    site.build()
    image = site.image("www1", "local.img")
    inodes, _ = ffs_inodes(image)
    assert inodes == expected_inodes(image, 16 * 1024)
    assert 16 * MiB // (16 * 1024) <= inodes < 2 * (16 * MiB // (16 * 1024))
    assert inodes < ffs_inodes(site.image("www2", "local.img"))[0] // 4  # www2: newfs's
    ext2 = site.image("db1", "local.img")
    assert ext2_room(ext2).inodes == 32 * MiB // (16 * 1024)
    assert_netbsd_accepts(image, "ffs")
    assert_netbsd_accepts(ext2, "ext2fs")


def test_a_larger_local_size_makes_an_ffs_image_anew_with_every_entry_kept(site):
    image = site.image("www1", "local.img")
    before = described(image)
    old = sha(image)
    site.data["domains"]["www1"]["local"] = {"size": "64m"}
    site.save()
    item = status(site)[("www1", "local")]
    assert item["action"] == "converge", item
    run = domus(site, "build")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "made anew at 64m, one inode per 4096 bytes" in run.stderr
    assert image.stat().st_size == 64 * MiB
    with FfsImage(image) as ffs:
        p = ffs.params
    assert (p.size, p.fsize, p.bsize) == (64 * MiB, 1024, 8192)  # newfs's for 64m
    inodes, free = ffs_inodes(image)
    assert inodes == expected_inodes(image, 4096) >= 64 * MiB // 4096
    assert free > 0.99 * inodes
    assert described(image) == before  # every entry, its metadata, content and links
    assert_netbsd_accepts(image, "ffs")  # NetBSD's rules, and every file read back by TSK
    assert [sha(p) for p in kept_images(image)] == [old]
    assert status(site)[("www1", "local")]["action"] == "up to date"
    assert domus(site, "build").ran == set()


def test_another_local_density_makes_an_ffs_image_anew_with_every_entry_kept(site):
    image = site.image("www2", "local.img")
    before = described(image)
    site.data["domains"]["www2"]["local"] = {"density": "32k"}
    site.save()
    run = domus(site, "build")
    assert run.returncode == 0, run.stdout + run.stderr
    assert image.stat().st_size == 16 * MiB
    assert ffs_inodes(image)[0] == expected_inodes(image, 32 * 1024)
    assert described(image) == before
    assert_netbsd_accepts(image, "ffs")


def test_an_image_made_tight_by_makefs_alone_gets_newfs_inodes_at_its_next_converge(site):
    """An image built before local.img had room: makefs sized its inodes to its files."""
    image = site.image("www1", "local.img")
    tight = image.with_name("tight.img")
    staged = site.output / "staged"
    _extract(image, staged)
    subprocess.run(
        ["makefs", "-t", "ffs", "-B", "le", "-o", "version=1", "-s", str(16 * MiB), "-F",
         str(staged / "spec"), str(tight), str(staged / "tree")],
        check=True, capture_output=True,
    )  # fmt: skip
    tight_inodes, _ = ffs_inodes(tight)
    assert tight_inodes < 200
    before = described(tight)
    shutil.move(tight, image)
    run = domus(site, "converge", "www1")
    assert run.returncode == 0, run.stdout + run.stderr
    assert ffs_inodes(image)[0] == expected_inodes(image, 2048) > 8000
    assert described(image) == before
    assert_netbsd_accepts(image, "ffs")


def _extract(image: Path, top: Path) -> None:
    """The image's entries as a staged tree and mtree spec, through the rewrite's own
    staging (metadata in the spec, content in the tree)."""
    (top / "tree").mkdir(parents=True)
    with FfsImage(image) as ffs:
        staged = Staged.of(ffs, list(ffs.entries()), top / "tree")
    (top / "spec").write_text(staged.spec())


def test_a_smaller_local_size_is_refused_and_the_image_unchanged(site):
    image = site.image("www1", "local.img")
    old = sha(image)
    site.data["domains"]["www1"]["local"] = {"size": "8m"}
    site.save()
    item = status(site)[("www1", "local")]
    assert item["action"] == "refuse"
    assert "it is 16m but local.size is 8m: an image is never shrunk" in item["why"][-1]
    run = domus(site, "build")
    assert run.returncode == 1
    assert "an image is never shrunk" in run.stdout
    assert "set local.size back to 16m or more" in run.stdout
    assert "Traceback" not in run.stdout + run.stderr
    assert sha(image) == old
    assert kept_images(image) == []


def test_an_ext2fs_image_grows_through_resize2fs_with_its_files(site):
    image = site.image("db1", "local.img")  # 32m ext2fs in the example site
    listing = _tsk(image)
    room = ext2_room(image)
    site.data["domains"]["db1"]["local"]["size"] = "64m"
    site.save()
    assert status(site)[("db1", "local")]["action"] == "converge"
    run = domus(site, "build")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "grew" in run.stderr and "(resize2fs)" in run.stderr
    assert image.stat().st_size == 64 * MiB
    grown = ext2_room(image)
    assert grown.bytes > 1.9 * room.bytes and grown.inodes == 2 * room.inodes
    assert _tsk(image) == listing
    assert_netbsd_accepts(image, "ext2fs")
    assert domus(site, "build").ran == set()


def _tsk(image: Path) -> dict[str, str]:
    """Every name with its inode's metadata and content hash, by The Sleuth Kit."""
    reader = ImageReader(image, "ext2fs")
    found = {}
    for path in reader.paths():
        meta = reader.stat(path)
        data = hashlib.sha256(reader.read(path)).hexdigest() if meta.type == "file" else ""
        found[path] = f"{meta.type} {meta.mode:o} {meta.uid}:{meta.gid} {meta.size} {data}"
    return found


# -- ./domus check ---------------------------------------------------------------------------


def test_check_warns_of_an_almost_full_local_image_and_still_passes(tmp_path):
    site = Site(tmp_path / "site")
    templates = tmp_path / "site" / "templates"
    (templates / "local" / "var").mkdir(parents=True)
    # a managed file filling www1's 16m image, so less than a tenth of its blocks is free
    (templates / "local" / "var" / "filler").write_text(("x" * 63 + "\n") * (13 * MiB // 64))
    site.data["templates"] = "templates"
    site.data["defaults"]["local"] = {"size": "16m", "fs": "ffs"}
    site.data["domains"]["db1"]["local"] = {"size": "32m", "fs": "ext2fs"}
    site.save()
    site.build()
    room = ffs_room(site.image("www1", "local.img"))
    assert room.free_bytes * 10 < room.bytes
    run = domus(site, "check")
    assert run.returncode == 0, run.stdout + run.stderr
    warned = [line for line in run.stdout.splitlines() if ": warning: " in line]
    assert {line.split(":")[0] for line in warned} == {"www1/local.img", "www2/local.img"}
    assert "room for the domU's files (a tenth free)" in warned[0]
    assert "raise local.size" in warned[0] and "KiB free" in warned[0]


def test_room_counts_inodes_and_blocks_each(tmp_path):
    assert room_problem(Room(900, 1000, 10, 100)) is None
    assert "89 of 1000 inodes" in (room_problem(Room(89, 1000, 50, 100)) or "")
    assert "9 of 100 KiB" not in (room_problem(Room(89, 1000, 50 << 10, 100 << 10)) or "")
    assert "9 of 100 KiB" in (room_problem(Room(900, 1000, 9 << 10, 100 << 10)) or "")
    # a real ext2fs image with almost every inode used
    image = tmp_path / "ext2.img"
    tree = tmp_path / "tree"
    tree.mkdir()
    for n in range(50):
        (tree / f"f{n}").write_text("")
    subprocess.run(
        ["mke2fs", "-q", "-F", "-t", "ext2", "-N", "64", "-d", str(tree), str(image), "4m"],
        check=True, capture_output=True,
    )  # fmt: skip
    room = ext2_room(image)
    assert room.free_inodes < room.inodes // 10
    [finding] = room_finding(image, "ext2fs", "x/local.img")
    assert finding.warning and "inodes" in (finding.problem or "")


def test_a_warning_is_shown_and_fails_nothing():
    findings = [
        Finding("a/local.img", "room", "only 3 of 64 inodes free", warning=True),
        Finding("root.img", "ffs superblock"),
    ]
    out = io.StringIO()
    assert report(findings, out) == 0
    assert out.getvalue() == "a/local.img: room: warning: only 3 of 64 inodes free\n"


def test_a_dry_run_names_the_new_size_and_a_resize_alone_is_not_called_a_match(site):
    image = site.image("www1", "local.img")
    old = sha(image)
    site.data["domains"]["www1"]["local"] = {"size": "64m"}
    site.save()
    dry = domus(site, "converge", "--dry-run", "www1")
    assert dry.returncode == 1, dry.stdout + dry.stderr  # as diff(1): it would differ
    assert "would make anew at 64m, one inode per 4096 bytes" in dry.stderr
    assert "local.img already matches" not in dry.stderr
    assert sha(image) == old
    run = domus(site, "converge", "www1")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "made anew at 64m, one inode per 4096 bytes" in run.stderr
    assert "local.img already matches" not in run.stderr
    assert "www1: local.img's managed files already match the site" in run.stderr
    again = domus(site, "converge", "--dry-run", "www1")
    assert again.returncode == 0 and "www1: local.img already matches the site" in again.stderr
