"""A guest's disk is hostile input to every command that reads it: on a local.img whose
superblock, inodes or directory entries the guest chose, `converge --dry-run`, `show`,
`ls`, `diff` and `check` each end with a documented exit status and one clear line, in
bounded time and memory (RLIMIT_AS 1 GiB, a wall-clock limit), never a traceback, and
write nothing outside the site's output directory.

FFS (www1, read by domus's own reader) and ext2fs (db1, read by debugfs: the site attaches
no image, so no kernel reads a crafted file system here)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tasks.images.ffs_reader import FfsImage
from tasks.site.sizes import parse_size
from tests.sites import REPO, Site
from tests.test_hostile_images import VALUES, mutate, targets

LIMIT_AS = 1 << 30
SECONDS = 120
EXITS = {0, 1, 2, 78}


def commands(name: str) -> list[list[str]]:
    return [
        ["converge", "--dry-run", name],
        ["show", f"local:{name}:/etc/rc.conf"],
        ["ls", f"local:{name}:/etc"],
        ["diff", f"local:{name}"],
        ["check", name],
    ]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    site = Site(tmp_path_factory.mktemp("hostile-commands"))
    site.data["blockdev"] = {"backend": "none"}
    site.save()
    site.build()
    return site


@pytest.fixture(scope="module")
def pristine(site: Site, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    keep = tmp_path_factory.mktemp("pristine")
    found = {}
    for name in ("www1", "db1"):
        found[name] = keep / f"{name}.img"
        shutil.copyfile(site.image(name, "local.img"), found[name])
    return found


def debugfs(image: Path, command: str) -> str:
    return subprocess.run(
        ["debugfs", "-R", command, str(image)], capture_output=True, text=True, check=True
    ).stdout


def ext2_block_size(image: Path) -> int:
    return int(re.search(r"Block size:\s+(\d+)", debugfs(image, "stats"))[1])  # type: ignore[index]


def ext2_inode_offset(image: Path, path: str) -> int:
    found = debugfs(image, f"imap {path}")
    where = re.search(r"located at block (\d+), offset 0x([0-9a-f]+)", found)
    assert where is not None
    return int(where[1]) * ext2_block_size(image) + int(where[2], 16)


def ext2_targets(image: Path) -> dict[str, list[tuple[int, int]]]:
    """(offset, width) of the superblock's fields, of the inodes of /etc and /etc/rc.conf
    (mode, size, links, blocks, flags, block pointers, size_high) and of /etc's entries."""
    sb = 1024
    fields = [(0, 4), (4, 4), (20, 4), (24, 4), (28, 4), (32, 4), (36, 4), (40, 4), (56, 2),
              (58, 2), (76, 4), (84, 4), (88, 2), (92, 4), (96, 4), (100, 4)]  # fmt: skip
    found: dict[str, list[tuple[int, int]]] = {
        "superblock": [(sb + off, width) for off, width in fields],
        "inode": [],
        "directory": [],
    }

    block = ext2_block_size(image)
    for path in ("/etc", "/etc/rc.conf"):
        at = ext2_inode_offset(image, path)
        for off, width in [(0, 2), (4, 4), (26, 2), (28, 4), (32, 4), (108, 4)]:
            found["inode"].append((at + off, width))
        found["inode"] += [(at + 40 + 4 * index, 4) for index in range(15)]
    for number in debugfs(image, "blocks /etc").split()[:1]:
        found["directory"] += [(int(number) * block + off, 4) for off in range(0, 256, 4)]
    return found


class Places(dict):
    """(offset, width) of what a guest could change, by image and group."""

    def __repr__(self) -> str:  # hypothesis prints the test's arguments: not these
        return "places"


@pytest.fixture(scope="module")
def places(pristine: dict[str, Path]) -> Places:
    return Places(www1=targets(pristine["www1"]), db1=ext2_targets(pristine["db1"]))


def run_all(site: Site, name: str, tmp: Path) -> list[str]:
    """Each command on the mutant of `name`: what went wrong, as text (none: all well)."""
    wrong = []
    for argv in commands(name):
        try:
            done = subprocess.run(
                ["prlimit", f"--as={LIMIT_AS}", str(REPO / "domus"), *argv,
                 f"config={site.path}"],
                capture_output=True, text=True, errors="replace", cwd=site.directory,
                env={**os.environ, "TMPDIR": str(tmp)}, stdin=subprocess.DEVNULL,
                timeout=SECONDS,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            wrong.append(f"{argv}: did not end in {SECONDS} s")
            continue
        said = done.stderr
        if done.returncode not in EXITS:
            wrong.append(f"{argv}: exit {done.returncode}: {said[-500:]}")
        for bad in ("Traceback", "MemoryError", "a bug in domus"):
            if bad in said:
                wrong.append(f"{argv}: {bad}: {said[-800:]}")
        if done.returncode != 0 and not (said + done.stdout).strip():
            wrong.append(f"{argv}: exit {done.returncode} without a word")
    left = os.listdir(tmp)
    if left:
        wrong.append(f"written to TMPDIR: {left}")
    return wrong


def outside(site: Site) -> set[str]:
    """The site directory's entries beside the output directory."""
    return {p.name for p in site.directory.iterdir()} - {site.output.name}


Changes = list[tuple[int, int, int]]


def mutant_of(
    site: Site, pristine: dict[str, Path], name: str, changes: Changes, tmp: Path
) -> list[str]:
    for each, image in pristine.items():
        shutil.copyfile(image, site.image(each, "local.img"))
    mutate(pristine[name], site.image(name, "local.img"), changes)
    before = outside(site)
    scratch = tmp / "tmpdir"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    wrong = run_all(site, name, scratch)
    if outside(site) != before:
        wrong.append(f"written beside the output directory: {outside(site) - before}")
    return wrong


@settings(
    # a mutant costs five commands of seconds each; DOMUS_HOSTILE_EXAMPLES=50 searches more
    max_examples=int(os.environ.get("DOMUS_HOSTILE_EXAMPLES", "2")),
    deadline=None,
    derandomize=True,
    database=None,
    phases=(Phase.explicit, Phase.generate),  # a mutant costs seconds: no shrinking
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
@pytest.mark.parametrize("name", ["www1", "db1"])
def test_every_command_on_a_mutated_local_img_ends_in_a_documented_exit(
    name: str,
    data: st.DataObject,
    site: Site,
    pristine: dict[str, Path],
    places: Places,
    tmp_path: Path,
) -> None:
    group = data.draw(st.sampled_from(["superblock", "inode", "directory"]), label="group")
    changes = data.draw(
        st.lists(
            st.tuples(st.sampled_from(places[name][group]), VALUES).map(
                lambda pair: (pair[0][0], pair[0][1], pair[1])
            ),
            min_size=1,
            max_size=3,
        ),
        label="changes",
    )
    assert mutant_of(site, pristine, name, changes, tmp_path) == [], changes


def ffs_field(image: Path, edit: Callable[[FfsImage], Changes]) -> Changes:
    with FfsImage(image) as reader:
        return edit(reader)


# ext2fs: 64m, as `check` reads every byte of a file through The Sleuth Kit
@pytest.mark.parametrize(("name", "size"), [("www1", "1g"), ("db1", "64m")])
def test_a_huge_sparse_managed_file_is_refused_by_name_and_shown_by_streaming(
    name: str, size: str, site: Site, pristine: dict[str, Path], tmp_path: Path
) -> None:
    """/etc/rc.conf made a hole of `size` by the guest's root: converge and diff name it
    and read nothing; show streams it within the 1 GiB address space."""
    claim = parse_size(size)

    def rc_conf_size(reader: FfsImage) -> Changes:
        return [(reader.inode_offset(reader.entry(b"etc/rc.conf").inode) + 8, 8, claim)]

    if name == "www1":
        changes = ffs_field(pristine[name], rc_conf_size)
    else:
        changes = [(ext2_inode_offset(pristine[name], "/etc/rc.conf") + 4, 4, claim)]
    assert mutant_of(site, pristine, name, changes, tmp_path) == []
    for argv in (["converge", "--dry-run", name], ["diff", f"local:{name}"]):
        done = subprocess.run(
            [str(REPO / "domus"), *argv, f"config={site.path}"],
            capture_output=True, text=True, cwd=site.directory,
        )  # fmt: skip
        assert done.returncode == 1, done.stderr
        assert (
            f"{site.image(name, 'local.img')}: /etc/rc.conf is {size}, larger than "
            "converge.max_file_size (1m); domus does not read it"
        ) in done.stderr


def test_a_sparse_file_is_staged_with_its_holes(tmp_path: Path) -> None:
    """A file the guest made sparse (a size far beyond its blocks) costs the rewrite's
    staging its blocks, and stages with the content the reader reads."""
    from tasks.converge.rewrite import Staged

    tree = tmp_path / "tree"
    (tree / "var").mkdir(parents=True)
    (tree / "var" / "sparse").write_bytes(b"head" * 1024)
    image = tmp_path / "local.img"
    subprocess.run(
        ["makefs", "-t", "ffs", "-B", "le", "-o", "version=1,bsize=8192,fsize=1024",
         "-s", "4m", str(image), str(tree)],
        check=True, capture_output=True,
    )  # fmt: skip

    def claim_256_mib(reader: FfsImage) -> Changes:
        return [(reader.inode_offset(reader.entry(b"var/sparse").inode) + 8, 8, 1 << 28)]

    mutate(image, image, ffs_field(image, claim_256_mib))
    staging = tmp_path / "staging"
    staging.mkdir()
    with FfsImage(image) as reader:
        Staged.of(reader, list(reader.entries()), staging)
        entry = reader.entry(b"var/sparse")
        head = next(reader.chunks(entry))
    staged = staging / "var" / "sparse"
    assert staged.stat().st_size == 1 << 28
    assert staged.stat().st_blocks * 512 <= 64 * 1024
    with open(staged, "rb") as f:
        assert f.read(len(head)) == head


def root_not_a_directory(reader: FfsImage) -> Changes:
    return [(reader.inode_offset(2), 2, 0)]  # di_mode 0


def etc_block_outside(reader: FfsImage) -> Changes:
    return [(reader.inode_offset(reader.entry(b"etc").inode) + 40, 4, 2**31 - 1)]  # di_db[0]


def huge_block_size(reader: FfsImage) -> Changes:
    return [(8192 + 48, 4, 2**31 - 1)]  # fs_bsize


def no_fragments_per_group(reader: FfsImage) -> Changes:
    return [(8192 + 188, 4, 0)]  # fs_fpg


def billions_of_groups(reader: FfsImage) -> Changes:
    return [(8192 + 44, 4, 2**31 - 1)]  # fs_ncg


def one_inode_per_group(reader: FfsImage) -> Changes:
    return [(8192 + 184, 4, 1)]  # fs_ipg


@pytest.mark.parametrize(
    "craft",
    [
        root_not_a_directory,
        etc_block_outside,
        huge_block_size,
        no_fragments_per_group,
        billions_of_groups,
        one_inode_per_group,
    ],
)
def test_a_crafted_ffs_local_img_is_refused_in_one_line_by_every_command(
    craft: Callable[[FfsImage], Changes], site: Site, pristine: dict[str, Path], tmp_path: Path
) -> None:
    changes = ffs_field(pristine["www1"], craft)
    assert mutant_of(site, pristine, "www1", changes, tmp_path) == []


def test_a_mounted_image_s_file_beyond_the_limit_is_refused_before_it_is_read(
    tmp_path: Path,
) -> None:
    """The mount path reads through the O_NOFOLLOW descriptor's fstat: a sparse 1 GiB
    /etc/rc.conf is named, and nothing of it read."""
    from tasks.converge.mounted import MountedFiles
    from tasks.run.errors import DomusError

    (tmp_path / "etc").mkdir()
    with open(tmp_path / "etc" / "rc.conf", "wb") as f:
        f.truncate(1 << 30)
    (tmp_path / "etc" / "fstab").write_text("small\n")
    files = MountedFiles(tmp_path, tmp_path / "local.img")
    assert files.read_all(["etc/fstab"])["etc/fstab"].data == b"small\n"  # type: ignore[union-attr]
    with pytest.raises(DomusError) as refused:
        files.read_all(["etc/fstab", "etc/rc.conf"])
    assert refused.value.message == (
        f"{tmp_path / 'local.img'}: /etc/rc.conf is 1g, larger than converge.max_file_size "
        "(1m); domus does not read it"
    )


def test_a_tool_reading_a_guest_s_disk_runs_within_its_memory_limit() -> None:
    """RLIMIT_AS of GUEST_TOOL_MEMORY: a tool reserving more fails, said as a DomusError."""
    from tasks.images.guest_limits import GUEST_TOOL_MEMORY
    from tasks.run.errors import DomusError
    from tasks.tools import run

    reserve = f"import mmap; mmap.mmap(-1, {GUEST_TOOL_MEMORY + (1 << 30)})"
    assert run([sys.executable, "-c", reserve], "reserving").returncode == 0
    with pytest.raises(DomusError, match="failed"):
        run([sys.executable, "-c", reserve], "reserving", guest=True)


def test_netbsd_s_fsck_of_a_converged_copy_is_stopped_at_the_guest_tools_time_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy a converge checks with fsck_ffs holds the guest's bytes, which can lead fsck
    in circles: past GUEST_TOOL_SECONDS it is stopped, and the image stays as it was."""
    from tasks.converge.local import check_converged
    from tasks.images import guest_limits
    from tasks.run.errors import DomusError

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fsck = bin_dir / "fsck_ffs"
    fsck.write_text("#!/bin/sh\nexec sleep 60\n")
    fsck.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setattr(guest_limits, "GUEST_TOOL_SECONDS", 0.5)
    started = time.monotonic()
    with pytest.raises(DomusError) as stopped:
        check_converged(tmp_path / "local.img.copy", "ffs")
    assert time.monotonic() - started < 30
    assert stopped.value.message == (
        "the converged copy failed its check, the image is unchanged: local.img.copy: "
        "`fsck_ffs` did not finish in 0.5 s and was stopped"
    )
