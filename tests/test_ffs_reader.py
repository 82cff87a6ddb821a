"""domus's own FFSv1 reader, held to The Sleuth Kit (an independent reader) and to the
mtree spec makefs built the image from."""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
from pathlib import Path

import pytest

from tasks.formats.mtree import encode
from tasks.formats.superblocks import SBLOCK_UFS1
from tasks.images.ffs_reader import (
    FS_DOSOFTDEP,
    FS_DOWAPBL,
    FS_FLAGS_AT,
    FS_POSIX1EACLS,
    FfsImage,
)

# name (bytes) -> spec words; the content of a regular file is written to the staging tree
WEIRD = b"name with space\nand newline \xff\xfe"
SPEC = f"""#mtree v2.0
. type=dir uid=0 gid=0 mode=0755
./etc type=dir uid=0 gid=0 mode=0755
./etc/rc.conf type=file uid=0 gid=0 mode=0644 time=1234567890.0
./etc/deep type=dir uid=7 gid=8 mode=0750
./etc/deep/linked type=file uid=1000 gid=100 mode=4755
./var type=dir uid=0 gid=0 mode=0755
./var/tmp type=dir uid=0 gid=0 mode=1777
./var/empty type=dir uid=0 gid=0 mode=0555
./var/also-linked type=file uid=1000 gid=100 mode=4755
./var/setgid type=file uid=0 gid=9 mode=2711
./var/big type=file uid=0 gid=0 mode=0600
./var/tail type=file uid=0 gid=0 mode=0640
./var/empty-file type=file uid=0 gid=0 mode=0000
./{encode(WEIRD.decode(errors="surrogateescape"))} type=file uid=3 gid=4 mode=0604
./short type=link uid=0 gid=0 mode=0755 link=etc/rc.conf
./long type=link uid=0 gid=0 mode=0777 link=/{"x" * 70}/target
./dev type=dir uid=0 gid=0 mode=0755
./dev/tty0 type=char uid=0 gid=4 mode=0620 device=netbsd,142,65
./dev/xbd0a type=block uid=0 gid=5 mode=0640 device=netbsd,142,1048575
./dev/fifo type=fifo uid=0 gid=0 mode=0600
"""
CONTENTS = {
    b"etc/rc.conf": b"rc_configured=YES\n",
    b"etc/deep/linked": b"one inode, two names\n",
    b"var/setgid": b"#!/bin/sh\n",
    b"var/big": bytes(range(256)) * 20_000 + b"end",  # beyond the direct blocks: indirect
    b"var/tail": b"t" * 5000,  # a block and a fragment tail
    b"var/empty-file": b"",
    WEIRD: b"x",
}


def build(tmp: Path, order: str = "le", version: int = 1, extra: str = "") -> Path:
    staging = tmp / "staging"
    for path, data in CONTENTS.items():
        target = Path(staging / path.decode(errors="surrogateescape"))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    for directory in ("var/tmp", "var/empty", "dev"):
        (staging / directory).mkdir(parents=True, exist_ok=True)
    (staging / "var/also-linked").unlink(missing_ok=True)
    (staging / "var/also-linked").hardlink_to(staging / "etc/deep/linked")
    spec = tmp / "spec"
    spec.write_text(SPEC + extra)
    image = tmp / f"ffs-{order}-{version}.img"
    subprocess.run(
        ["makefs", "-t", "ffs", "-B", order, "-o", f"version={version},bsize=4096,fsize=512",
         "-s", "8m", "-F", str(spec), str(image), str(staging)],
        check=True, capture_output=True,
    )  # fmt: skip
    return image


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("ffs"))


def tsk(*argv: str) -> str:
    # istat of a device node exits 1 (its "blocks" are the device number) after printing
    # every field
    done = subprocess.run([argv[0], "-f", "ufs", *argv[1:]], capture_output=True)
    assert done.returncode == 0 or argv[0] == "istat", done.stderr
    return done.stdout.decode(errors="surrogateescape")


TSK_TYPES = {"r": "file", "d": "dir", "l": "link", "c": "char", "b": "block", "p": "fifo"}


def tsk_listing(image: Path) -> dict[bytes, tuple[str, int]]:
    """fls: path -> (type, inode); TSK shows a control character in a name as '^'."""
    found = {}
    for line in tsk("fls", "-r", "-p", str(image)).split("\n"):
        match = re.match(r"^(\S)/(\S) (\*?)\s*(\d+):\t(.*)$", line)
        if match and not match.group(3) and match.group(1) != "V":
            name = match.group(5).encode(errors="surrogateescape")
            found[name] = (TSK_TYPES[match.group(1)], int(match.group(4)))
    return found


def as_tsk_shows(path: bytes) -> bytes:
    return re.sub(rb"[\x00-\x1f]", b"^", path)


def test_every_entry_agrees_with_the_sleuth_kit(image: Path) -> None:
    with FfsImage(image) as ffs:
        entries = {e.path: e for e in ffs.entries()}
        assert ffs.refusal() is None
        listing = tsk_listing(image)
        assert {as_tsk_shows(p) for p in entries if p} == set(listing)
        for path, entry in entries.items():
            if not path:
                assert (entry.type, entry.inode) == ("dir", 2)
                continue
            assert listing[as_tsk_shows(path)] == (entry.type, entry.inode), path
            fields = dict(
                re.findall(r"^([^:\n]+):\s*(.*)$", tsk("istat", str(image), str(entry.inode)), re.M)
            )
            assert fields["uid / gid"] == f"{entry.uid} / {entry.gid}", path
            assert int(fields["size"]) == entry.size, path
            assert int(fields["num of links"]) == entry.nlink, path
            if entry.type == "link":
                assert fields["symbolic link to"].encode() == entry.link, path
            if entry.type == "file":
                content = ffs.read(entry)
                assert content == tsk("icat", str(image), str(entry.inode)).encode(
                    errors="surrogateescape"
                ), path
                assert content == CONTENTS.get(path, CONTENTS.get(b"etc/deep/linked")), path


def test_metadata_is_what_the_spec_says(image: Path) -> None:
    with open(image, "rb") as file, FfsImage(file) as ffs:  # a file object reads the same
        entry = {e.path: e for e in ffs.entries()}
    assert entry[b"etc/deep/linked"].mode == 0o4755
    assert entry[b"var/setgid"].mode == 0o2711
    assert entry[b"var/tmp"].mode == 0o1777
    assert entry[b"var/empty-file"].mode == 0
    assert (entry[WEIRD].uid, entry[WEIRD].gid, entry[WEIRD].mode) == (3, 4, 0o604)
    assert entry[b"etc/rc.conf"].mtime == 1234567890
    assert entry[b"etc/deep/linked"].inode == entry[b"var/also-linked"].inode
    assert entry[b"etc/deep/linked"].nlink == 2
    assert entry[b"dev/tty0"].device == (142, 65)
    assert entry[b"dev/xbd0a"].device == (142, 1048575)
    assert entry[b"dev/tty0"].rdev == (142 << 8) | 65
    assert entry[b"dev/fifo"].type == "fifo"
    assert entry[b"short"].link == b"etc/rc.conf"  # kept in the inode (fast symlink)
    assert entry[b"long"].link == b"/" + b"x" * 70 + b"/target"  # kept in a block
    assert entry[b"var/empty"].nlink == 2 and entry[b""].nlink == 5


def test_entry_walks_to_one_path_and_chunks_add_up(image: Path) -> None:
    with FfsImage(image) as ffs:
        big = ffs.entry(b"/var/big")
        assert big.size == len(CONTENTS[b"var/big"])
        chunks = list(ffs.chunks(big, 65536))
        assert {len(c) for c in chunks[:-1]} == {65536}
        digest = hashlib.sha256(b"".join(chunks)).digest()
        assert digest == hashlib.sha256(CONTENTS[b"var/big"]).digest()
        assert ffs.entry(b"").type == "dir"
        with pytest.raises(KeyError):
            ffs.entry(b"etc/missing")
        with pytest.raises(KeyError):
            ffs.entry(b"etc/rc.conf/below")


def test_params_are_the_ones_makefs_was_given(image: Path) -> None:
    with FfsImage(image) as ffs:
        params = ffs.params
    assert (params.order, params.size, params.bsize, params.fsize) == ("little", 8 << 20, 4096, 512)


def test_a_big_endian_image_reads_the_same(tmp_path: Path, image: Path) -> None:
    def summary(path: Path) -> list[tuple[object, ...]]:
        with FfsImage(path) as ffs:
            return [
                (e.path, e.type, e.mode, e.uid, e.gid, e.size, e.nlink, e.rdev, e.link,
                 ffs.read(e) if e.type == "file" else None)
                for e in ffs.entries()
            ]  # fmt: skip

    big = build(tmp_path, order="be")
    with FfsImage(big) as ffs:
        assert ffs.params.order == "big"
    assert sorted(summary(big)) == sorted(summary(image))


def test_file_flags_are_read_from_the_inode(tmp_path: Path, image: Path) -> None:
    copy = tmp_path / "flags.img"
    copy.write_bytes(image.read_bytes())
    with FfsImage(copy) as ffs:
        number = ffs.entry(b"etc/rc.conf").inode
        at = _inode_offset(ffs, number)
    with open(copy, "r+b") as f:  # chflags schg,uappnd: SF_IMMUTABLE | UF_APPEND
        f.seek(at + 100)
        f.write((0x00020000 | 0x00000004).to_bytes(4, "little"))
    with FfsImage(copy) as ffs:
        assert ffs.entry(b"etc/rc.conf").flags == 0x00020004


def _inode_offset(ffs: FfsImage, number: int) -> int:
    sb = ffs.sb
    cg, index = divmod(number, sb.fs_ipg)
    block = sb.cgstart(cg) + sb.fs_iblkno + (index // sb.fs_inopb) * sb.fs_frag
    return block * sb.fs_fsize + (index % sb.fs_inopb) * 128


def _patched(tmp_path: Path, image: Path, offset: int, value: bytes) -> Path:
    copy = tmp_path / "patched.img"
    data = bytearray(image.read_bytes())
    data[SBLOCK_UFS1 + offset : SBLOCK_UFS1 + offset + len(value)] = value
    copy.write_bytes(bytes(data))
    return copy


@pytest.mark.parametrize(
    ("offset", "value", "words"),
    [
        (209, b"\0", "not marked clean"),
        (FS_FLAGS_AT, FS_DOWAPBL.to_bytes(4, "little"), "WAPBL log"),
        (FS_FLAGS_AT, FS_DOSOFTDEP.to_bytes(4, "little"), "soft dependencies"),
        (FS_FLAGS_AT, FS_POSIX1EACLS.to_bytes(4, "little"), "ACLs"),
    ],
)
def test_refusals_of_the_superblock(
    tmp_path: Path, image: Path, offset: int, value: bytes, words: str
) -> None:
    with FfsImage(_patched(tmp_path, image, offset, value)) as ffs:
        assert words in (ffs.refusal() or "")


def test_ffsv2_and_extended_attributes_are_refused(tmp_path: Path) -> None:
    (tmp_path / "v2").mkdir()
    with FfsImage(build(tmp_path / "v2", version=2)) as ffs:
        assert "FFSv2" in (ffs.refusal() or "")
    (tmp_path / "ea").mkdir()
    extra = "./.attribute type=dir uid=0 gid=0 mode=0755\n"
    (tmp_path / "ea/staging/.attribute").mkdir(parents=True)
    with FfsImage(build(tmp_path / "ea", extra=extra)) as ffs:
        assert "/.attribute" in (ffs.refusal() or "")


def test_a_file_object_of_bytes_is_read_too(image: Path) -> None:
    with FfsImage(io.BytesIO(image.read_bytes())) as ffs:
        assert ffs.read(ffs.entry(b"var/tail")) == CONTENTS[b"var/tail"]


class _CountedReads(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.reads = 0

    def read(self, size: int | None = -1) -> bytes:
        self.reads += 1
        return super().read(size)


def test_walk_gives_what_entries_give(image: Path) -> None:
    with FfsImage(image) as ffs:
        entries = list(ffs.entries())
        walked = list(ffs.walk())
        assert [(e.path, e.inode, e.nlink, e.size) for e in entries] == [
            (path, inode.inode, inode.nlink, inode.size) for path, inode in walked
        ]
        links = {e.path: e.link for e in entries if e.type == "link"}
        assert links
        assert {
            path: ffs.link_target(inode) for path, inode in walked if inode.type == "link"
        } == links
        for entry, (_, inode) in zip(entries, walked, strict=True):
            if entry.type == "file":
                assert list(ffs.data_extents(entry)) == list(ffs.data_extents(inode))


def test_a_listing_reads_each_inode_table_block_once(image: Path) -> None:
    source = _CountedReads(image.read_bytes())
    with FfsImage(source) as ffs:
        entries = list(ffs.entries())
        ipg, inopb = ffs.sb.fs_ipg, ffs.sb.fs_inopb
        tables = {(e.inode // ipg, e.inode % ipg // inopb) for e in entries}
        # what else a listing reads: each directory's extents and each slow symlink's target
        contents = sum(len(list(ffs.data_extents(e))) for e in entries if e.type == "dir")
        contents += sum(1 for e in entries if e.type == "link" and e.blocks)
    with FfsImage(source) as ffs:
        source.reads = 0
        listed = sum(1 for _ in ffs.entries())
    assert listed == len(entries) > len(tables) + contents
    # one read an inode-table block, none an inode
    assert source.reads <= len(tables) + contents
