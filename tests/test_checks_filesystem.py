"""NetBSD's file-system rules (tasks/formats/fsck_rules.py) catch what NetBSD refuses."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tasks.checks.filesystem import fsck_output_problem
from tasks.checks.images import check_image
from tasks.checks.readback import ffs_read_problems, tsk_read_problems
from tasks.formats.fsck_rules import (
    ext2_alternate_offset,
    ext2_problem,
    ext2_superblocks,
    ffs_problems,
    find_superblock,
    without_linux_mount_marks,
)
from tasks.formats.superblocks import EXT2_SUPERBLOCK
from tasks.images.ext2fs import FEATURES
from tests.netbsd_rules import assert_netbsd_accepts, netbsd_problems


def tree(tmp_path: Path) -> Path:
    top = tmp_path / "tree"
    (top / "etc").mkdir(parents=True)
    (top / "etc" / "rc.conf").write_text("rc_configured=YES\n")
    (top / "data").write_bytes(bytes(range(256)) * 400)
    return top


def ext2_image(tmp_path: Path, size: str = "16m", block: int = 1024) -> Path:
    """An image as domus makes one (tasks/images/ext2fs.py)."""
    image = tmp_path / f"ext2-{size}-{block}.img"
    subprocess.run(["truncate", "-s", size, str(image)], check=True)
    subprocess.run(
        ["mke2fs", "-q", "-F", "-t", "ext2", "-r", "1", "-O", FEATURES, "-I", "128",
         "-b", str(block), "-d", str(tree(tmp_path)), str(image)],
        check=True, capture_output=True,
    )  # fmt: skip
    return image


def ffs_image(tmp_path: Path, size: str = "128m", top: Path | None = None) -> Path:
    """An image as domus makes one (tasks/images/ffs.py), of `top` or a small tree."""
    image = tmp_path / "ffs.img"
    subprocess.run(
        ["makefs", "-t", "ffs", "-B", "le", "-o", "version=1", "-s", size, str(image),
         str(top or tree(tmp_path))],
        check=True, capture_output=True,
    )  # fmt: skip
    return image


def poke(image: Path, offset: int, data: bytes) -> None:
    with open(image, "r+b") as f:
        f.seek(offset)
        f.write(data)


def problem_of(image: Path) -> str | None:
    return ext2_problem(image.read_bytes())


def test_a_fresh_ext2fs_image_is_accepted(tmp_path):
    image = ext2_image(tmp_path)
    assert problem_of(image) is None
    assert_netbsd_accepts(image, "ext2fs")


@pytest.mark.parametrize(("size", "block"), [("16m", 1024), ("160m", 4096)])
def test_the_first_alternate_is_where_dumpe2fs_puts_group_1s_backup(tmp_path, size, block):
    image = ext2_image(tmp_path, size, block)
    header = subprocess.run(["dumpe2fs", str(image)], capture_output=True, text=True).stdout
    backup = int(re.search(r"Group 1: .*\n\s+Backup superblock at (\d+)", header)[1])
    primary = image.read_bytes()[EXT2_SUPERBLOCK : EXT2_SUPERBLOCK + 1024]
    assert ext2_alternate_offset(primary) == backup * block


def test_last_mounted_differing_from_the_alternate_is_refused(tmp_path):
    image = ext2_image(tmp_path)
    poke(image, EXT2_SUPERBLOCK + 136, b"/mnt/somewhere\0")
    problem = problem_of(image)
    assert problem is not None
    assert "VALUES IN SUPER BLOCK DISAGREE WITH THOSE IN FIRST ALTERNATE" in problem
    assert "s_last_mounted" in problem
    assert netbsd_problems(image, "ext2fs")


def test_kbytes_written_differing_is_refused(tmp_path):
    image = ext2_image(tmp_path)
    poke(image, EXT2_SUPERBLOCK + 376, (123456).to_bytes(8, "little"))
    assert "s_kbytes_written" in problem_of(image)


@pytest.mark.parametrize(
    ("offset", "value"),
    [
        (12, (7).to_bytes(4, "little")),  # s_free_blocks_count
        (44, (1_700_000_000).to_bytes(4, "little")),  # s_mtime
        (52, (9).to_bytes(2, "little")),  # s_mnt_count
        (58, (2).to_bytes(2, "little")),  # s_state
        (90, (0).to_bytes(2, "little")),  # s_block_group_nr
    ],
)
def test_the_fields_fsck_ext2fs_copies_over_may_differ(tmp_path, offset, value):
    image = ext2_image(tmp_path)
    poke(image, EXT2_SUPERBLOCK + offset, value)
    assert problem_of(image) is None


def test_only_the_largefile_bit_of_ro_compat_may_differ(tmp_path):
    image = ext2_image(tmp_path)
    primary = bytearray(image.read_bytes()[EXT2_SUPERBLOCK : EXT2_SUPERBLOCK + 1024])
    rocompat = int.from_bytes(primary[100:104], "little")
    poke(image, EXT2_SUPERBLOCK + 100, (rocompat & ~0x2).to_bytes(4, "little"))
    assert problem_of(image) is None
    poke(image, EXT2_SUPERBLOCK + 100, (rocompat | 0x4).to_bytes(4, "little"))
    assert "INCOMPATIBLE FEATURE BITS" in problem_of(image)


def test_a_single_group_file_system_is_not_compared(tmp_path):
    image = ext2_image(tmp_path, "4m")
    assert ext2_superblocks(image.read_bytes())[1] is None
    poke(image, EXT2_SUPERBLOCK + 136, b"/mnt\0")
    assert problem_of(image) is None


def test_taking_back_the_linux_marks_makes_it_acceptable_again(tmp_path):
    image = ext2_image(tmp_path)
    poke(image, EXT2_SUPERBLOCK + 136, b"/mnt/somewhere\0")
    poke(image, EXT2_SUPERBLOCK + 376, (99).to_bytes(8, "little"))
    primary, alternate = ext2_superblocks(image.read_bytes())
    poke(image, EXT2_SUPERBLOCK, without_linux_mount_marks(primary, alternate))
    assert problem_of(image) is None


def test_a_wrong_magic_number_is_refused(tmp_path):
    image = ext2_image(tmp_path)
    poke(image, EXT2_SUPERBLOCK + 56, b"\0\0")
    assert problem_of(image) == "BAD SUPER BLOCK: MAGIC NUMBER WRONG"
    assert netbsd_problems(image, "ext2fs")  # and it no longer holds ext2fs at all


def test_a_fresh_ffs_image_is_accepted(tmp_path):
    image = ffs_image(tmp_path)
    assert ffs_problems(image.read_bytes()) == []
    assert_netbsd_accepts(image, "ffs")


def cylinder_group_offsets(image: Path) -> list[int]:
    sb = find_superblock(image.read_bytes())
    return [(sb.cgstart(cg) + sb.fs_cblkno) * sb.fs_fsize for cg in range(sb.fs_ncg)]


def test_a_corrupted_cylinder_group_magic_is_refused(tmp_path):
    image = ffs_image(tmp_path)
    groups = cylinder_group_offsets(image)
    assert len(groups) > 1
    poke(image, groups[1] + 4, b"\0\0\0\0")
    assert ffs_problems(image.read_bytes()) == [f"CG 1: BAD MAGIC NUMBER (at byte {groups[1] + 4})"]
    assert any("BAD MAGIC NUMBER" in p for p in netbsd_problems(image, "ffs"))


def test_an_alternate_superblock_that_disagrees_is_refused(tmp_path):
    image = ffs_image(tmp_path)
    sb = find_superblock(image.read_bytes())
    last = (sb.cgstart(sb.fs_ncg - 1) + sb.fs_sblkno) * sb.fs_fsize
    poke(image, last + 184, (sb.fs_ipg * 2).to_bytes(4, "little"))  # fs_ipg
    (problem,) = ffs_problems(image.read_bytes())
    assert "DISAGREE WITH THOSE IN FIRST ALTERNATE: fs_ipg" in problem


def test_a_wrong_block_mask_and_a_missing_superblock_are_refused(tmp_path):
    image = ffs_image(tmp_path)
    poke(image, 8192 + 72, (0).to_bytes(4, "little"))  # fs_bmask
    assert "INCORRECT BMASK=0x0 IN SUPERBLOCK" in ffs_problems(image.read_bytes())
    poke(image, 8192 + 1372, b"\0\0\0\0")
    assert ffs_problems(image.read_bytes()) == ["BAD SUPER BLOCK: CAN'T FIND SUPERBLOCK"]


def test_an_image_cut_short_is_found_by_reading_every_file(tmp_path):
    image = ext2_image(tmp_path)
    assert tsk_read_problems(image, "ext2fs") == []
    istat = subprocess.run(
        ["debugfs", "-R", "stat /data", str(image)], capture_output=True, text=True, check=True
    ).stdout
    inode = int(istat.split()[1])
    blocks = istat.split("BLOCKS:")[1].split()[0]  # (0-11):1234-1245
    with open(image, "r+b") as f:
        f.truncate(int(blocks.split(":")[1].split("-")[0]) * 1024)
    problems = tsk_read_problems(image, "ext2fs")
    assert problems and problems[0].startswith(f"/data (inode {inode}): ")


# fsck_ffs -n as NetBSD prints it (sbin/fsck_ffs: setup.c, main.c, pass*.c)
FSCK_FFS_CLEAN = """\
** /dev/rvnd0a (NO WRITE)
** File system is already clean
** Last Mounted on /
** Phase 1 - Check Blocks and Sizes
** Phase 2 - Check Pathnames
** Phase 3 - Check Connectivity
** Phase 4 - Check Reference Counts
** Phase 5 - Check Cyl groups
1234 files, 56789 used, 100211 free (91 frags, 12515 blocks, 0.1% fragmentation)
"""
FSCK_FFS_NO_SUPERBLOCK = """\
** /dev/rvnd0a (NO WRITE)
BAD SUPER BLOCK: CAN'T FIND SUPERBLOCK
/dev/rvnd0a: CANNOT FIGURE OUT FILE SYSTEM PARTITION
"""
FSCK_FFS_UNREF = """\
** /dev/rvnd0a (NO WRITE)
** Phase 1 - Check Blocks and Sizes
** Phase 2 - Check Pathnames
** Phase 3 - Check Connectivity
** Phase 4 - Check Reference Counts
UNREF FILE I=1234  OWNER=root MODE=100644
SIZE=12 MTIME=Jan  1 00:00 2024
RECONNECT? no

** Phase 5 - Check Cyl groups
1234 files, 56789 used, 100211 free (91 frags, 12515 blocks, 0.1% fragmentation)
"""
FSCK_EXT2FS_DISAGREE = """\
** /dev/rvnd1a (NO WRITE)
BAD SUPER BLOCK: VALUES IN SUPER BLOCK DISAGREE WITH THOSE IN FIRST ALTERNATE
"""


def test_a_clean_fsck_run_passes():
    assert fsck_output_problem(FSCK_FFS_CLEAN, 0) is None


def test_fsck_exiting_0_without_a_superblock_fails():
    problem = fsck_output_problem(FSCK_FFS_NO_SUPERBLOCK, 0)
    assert problem is not None and "CAN'T FIND SUPERBLOCK" in problem
    assert "never reached Phase 1" in problem


def test_a_question_answered_no_fails():
    assert "RECONNECT? no" in fsck_output_problem(FSCK_FFS_UNREF, 0)


def test_a_bad_ext2fs_superblock_and_a_non_zero_exit_fail():
    assert "DISAGREE" in fsck_output_problem(FSCK_EXT2FS_DISAGREE, 8)
    assert fsck_output_problem(FSCK_FFS_CLEAN, 8).startswith("exit 8")


def test_an_image_of_another_file_system_is_named(tmp_path):
    image = ext2_image(tmp_path)
    (finding,) = check_image(image, "ffs")
    assert finding.problem == "holds ext2fs, not ffs"


def test_an_ffs_image_cut_short_is_found_by_reading_every_file(tmp_path):
    image = ffs_image(tmp_path, "8m")
    assert ffs_read_problems(image) == []
    from tasks.images.ffs_reader import FfsImage

    with FfsImage(image) as reader:
        ((offset, _), *_) = reader.data_extents(reader.entry(b"data"))
    with open(image, "r+b") as f:
        f.truncate(offset)
    problems = ffs_read_problems(image)
    assert len(problems) == 1 and "larger than the image" in problems[0]


def test_a_link_count_that_disagrees_with_the_names_is_found(tmp_path):
    import struct

    from tasks.images.ffs_reader import FfsImage

    top = tree(tmp_path)
    (top / "etc" / "rc.conf.link").hardlink_to(top / "etc" / "rc.conf")
    image = ffs_image(tmp_path, "8m", top)
    assert ffs_read_problems(image) == []
    with FfsImage(image) as reader:
        inode = reader.entry(b"etc/rc.conf").inode
        at = reader.inode_offset(inode) + 2  # di_nlink
        etc = reader.inode_offset(reader.entry(b"etc").inode) + 2
    with open(image, "r+b") as f:
        f.seek(at)
        f.write(struct.pack("<h", 1))
        f.seek(etc)
        f.write(struct.pack("<h", 5))
    problems = ffs_read_problems(image)
    assert any(f"(inode {inode}): link count 1, 2 names found" in p for p in problems)
    assert any(p.startswith("/etc (inode") and "link count 5, 2 names" in p for p in problems)


def test_a_file_with_many_names_is_read_once(tmp_path, monkeypatch):
    from tasks.images.ffs_reader import FfsImage

    top = tmp_path / "tree"
    top.mkdir()
    (top / "data").write_bytes(b"d" * 200_000)
    for index in range(300):
        (top / f"name{index}").hardlink_to(top / "data")
    image = ffs_image(tmp_path, "8m", top)
    read: list[int] = []
    original = FfsImage.read_at

    def counting(self, offset, size):
        read.append(size)
        return original(self, offset, size)

    monkeypatch.setattr(FfsImage, "read_at", counting)
    assert ffs_read_problems(image) == []
    assert sum(read) == 200_000  # one inode, not one a name
