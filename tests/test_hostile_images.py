"""A guest's disk is hostile input: the FFS reader, given an image whose every byte the
guest chose, ends each read in bounded time and memory, with the image read or refused
(FfsError), never a hang, a MemoryError or another exception.

Each mutant is read by a worker process under RLIMIT_AS of 1 GiB, with an alarm of 20 s a
mutant, doing what the consumers of the reader do: refusal(), every entry, the allocated
data of every file, and the content of small files."""

from __future__ import annotations

import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.formats.fsck_rules import FS_INT32, FS_INT64, find_superblock
from tasks.images.ffs_reader import FfsImage
from tests.conftest import REPO

WORKER = r"""
import resource, signal, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from tasks.images.ffs_reader import FfsError, FfsImage

def alarm(*_):
    raise TimeoutError

signal.signal(signal.SIGALRM, alarm)
for line in sys.stdin:
    signal.alarm(20)
    try:
        with FfsImage(line.rstrip("\n")) as image:
            image.refusal()
            for entry in image.entries():
                if entry.type == "file":
                    for _ in image.data_extents(entry):
                        pass
                    if entry.size <= 1 << 20:
                        image.read(entry)
        outcome = "read"
    except FfsError:
        outcome = "refused"
    except TimeoutError:
        outcome = "hang"
    except MemoryError:
        outcome = "memory"
    except Exception as error:
        outcome = f"bug: {type(error).__name__}: {error}"
    signal.alarm(0)
    print(outcome, flush=True)
"""


class Worker:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", WORKER],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def read(self, image: Path) -> str:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(f"{image}\n")
        self.process.stdin.flush()
        outcome = self.process.stdout.readline().strip()
        return outcome or f"worker died ({self.process.poll()})"

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    each = Worker()
    yield each
    each.close()


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small FFS image with directories, hard links, a symlink and a file with indirect
    blocks."""
    top = tmp_path_factory.mktemp("hostile")
    tree = top / "tree"
    for directory in ("etc", "var/log", "var/db", "tmp"):
        (tree / directory).mkdir(parents=True)
    (tree / "etc" / "rc.conf").write_text("sshd=YES\n")
    (tree / "var" / "log" / "messages").write_bytes(bytes(range(256)) * 2000)  # 500 KiB
    (tree / "var" / "db" / "big").write_bytes(b"x" * 300_000)
    (tree / "tmp" / "a").write_text("a\n")
    (tree / "tmp" / "b").hardlink_to(tree / "tmp" / "a")
    (tree / "etc" / "link").symlink_to("rc.conf")
    image = top / "base.img"
    subprocess.run(
        ["makefs", "-t", "ffs", "-B", "le", "-o", "version=1,bsize=8192,fsize=1024",
         "-s", "4m", str(image), str(tree)],
        check=True, capture_output=True,
    )  # fmt: skip
    return image


def targets(image: Path) -> dict[str, list[tuple[int, int]]]:
    """(offset, width) of what a guest could change, by group: superblock fields, inode
    fields of every inode in use, and the entries of every directory."""
    data = image.read_bytes()
    sb = find_superblock(data)
    assert sb is not None
    at = 8192  # SBLOCK_UFS1
    found: dict[str, list[tuple[int, int]]] = {
        "superblock": [(at + off, 4) for off in FS_INT32.values()]
        + [(at + off, 8) for off in FS_INT64.values()],
        "inode": [],
        "directory": [],
    }
    with FfsImage(image) as reader:
        for entry in reader.entries():
            if not entry.inode:
                continue
            base = reader.inode_offset(entry.inode)
            # mode, nlink, size, db[0..11], ib[0..2], flags, blocks
            for off, width in [(0, 2), (2, 2), (8, 8), (108, 4), (104, 4)]:
                found["inode"].append((base + off, width))
            for index in range(15):
                found["inode"].append((base + 40 + 4 * index, 4))
            if entry.type == "dir":
                for start, length in reader.data_extents(entry):
                    for off in range(0, min(length, 512), 4):
                        found["directory"].append((start + off, 4))
        root = reader.inode_offset(2)
        found["inode"].append((root + 8, 8))
    return found


@pytest.fixture(scope="module")
def places(base: Path) -> dict[str, list[tuple[int, int]]]:
    return targets(base)


VALUES = st.one_of(
    st.sampled_from([0, 1, 2, 3, 7, 60, 127, 128, 4096, 8192, 65536, 10_000_000, 2**31 - 1]),
    st.sampled_from([-1, -(2**31), 2**32 - 1, 2**40, 2**63 - 1]),
    st.integers(min_value=0, max_value=2**32 - 1),
)


def mutate(image: Path, out: Path, changes: list[tuple[int, int, int]]) -> None:
    data = bytearray(image.read_bytes())
    for offset, width, value in changes:
        data[offset : offset + width] = (value % (1 << (8 * width))).to_bytes(width, "little")
    out.write_bytes(data)


@pytest.mark.parametrize("group", ["superblock", "inode", "directory"])
@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_a_mutated_image_is_read_or_refused_in_bounded_time_and_memory(
    group: str,
    data: st.DataObject,
    base: Path,
    places: dict[str, list[tuple[int, int]]],
    worker: Worker,
    tmp_path: Path,
) -> None:
    changes = data.draw(
        st.lists(
            st.tuples(st.sampled_from(places[group]), VALUES).map(
                lambda pair: (pair[0][0], pair[0][1], pair[1])
            ),
            min_size=1,
            max_size=3,
        )
    )
    mutant = tmp_path / "mutant.img"
    mutate(base, mutant, changes)
    assert worker.read(mutant) in ("read", "refused"), changes


def crafted(base: Path, tmp_path: Path, name: str, edit) -> Path:
    data = bytearray(base.read_bytes())
    with FfsImage(base) as reader:
        edit(data, reader)
    out = tmp_path / f"{name}.img"
    out.write_bytes(data)
    return out


def put(data: bytearray, offset: int, fmt: str, *values: int) -> None:
    struct.pack_into("<" + fmt, data, offset, *values)


def test_ten_million_cylinder_groups_are_refused_at_once(base, worker, tmp_path) -> None:
    image = crafted(
        base, tmp_path, "ncg", lambda d, r: put(d, 8192 + FS_INT32["fs_ncg"], "i", 10_000_000)
    )
    assert worker.read(image) == "refused"


def test_an_indirect_block_pointing_to_itself_is_refused(base, worker, tmp_path) -> None:
    def edit(data: bytearray, reader: FfsImage) -> None:
        entry = reader.entry(b"var/log/messages")
        inode = reader.stat_inode(entry.inode)
        first = inode.ib[0]
        # the single indirect block's every pointer leads back to it: as a double
        # indirect block, it would be read without end
        put(data, reader.inode_offset(entry.inode) + 8, "Q", 2**40)
        put(data, reader.inode_offset(entry.inode) + 40 + 4 * 13, "i", first)
        for index in range(2048):
            put(data, first * 1024 + 4 * index, "i", first)

    assert worker.read(crafted(base, tmp_path, "selfref", edit)) == "refused"


def test_a_directory_claiming_a_terabyte_is_refused(base, worker, tmp_path) -> None:
    def edit(data: bytearray, reader: FfsImage) -> None:
        entry = reader.entry(b"var")
        put(data, reader.inode_offset(entry.inode) + 8, "Q", 1 << 40)

    assert worker.read(crafted(base, tmp_path, "bigdir", edit)) == "refused"


def test_a_directory_with_two_names_is_refused(base, worker, tmp_path) -> None:
    def edit(data: bytearray, reader: FfsImage) -> None:
        # /tmp's entry "a" made to name /var's inode: a hard-linked directory
        var = reader.entry(b"var").inode
        tmp = reader.entry(b"tmp")
        (start, length), *_ = reader.data_extents(tmp)
        block = bytes(data[start : start + length])
        at = block.index(b"\x01a\x00") - 7  # d_namlen 1, "a", its d_ino 7 bytes before
        put(data, start + at, "I", var)
        put(data, start + at + 6, "B", 4)  # DT_DIR

    assert worker.read(crafted(base, tmp_path, "twonames", edit)) == "refused"


def test_a_huge_sparse_file_costs_its_blocks_not_its_size(base, worker, tmp_path) -> None:
    def edit(data: bytearray, reader: FfsImage) -> None:
        entry = reader.entry(b"var/db/big")
        offset = reader.inode_offset(entry.inode)
        put(data, offset + 8, "Q", (1 << 40) - 1)  # a TiB, nearly all of it a hole

    assert worker.read(crafted(base, tmp_path, "sparse", edit)) in ("read", "refused")
