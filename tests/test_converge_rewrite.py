"""FFS local images converged where no mount can write FFS: rewritten through makefs and
verified entry by entry (tasks/converge/rewrite.py).

The old and the new image are compared here with domus's reader (itself held to The Sleuth
Kit in tests/test_ffs_reader.py), with The Sleuth Kit's listing, and with NetBSD's rules.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import random
import re
import shutil
import signal
import stat
import struct
import subprocess
from pathlib import Path

import pytest

from tasks.cgd.params import parse
from tasks.cgd.stream import decrypt_file
from tasks.converge.plan import Change, FileState
from tasks.converge.rewrite import Staged, kept_images, opened, write_inode_fields
from tasks.formats.fsck_rules import ffs_problems
from tasks.formats.mtree import encode
from tasks.formats.superblocks import SBLOCK_UFS1, has_ffs_superblock
from tasks.images.ffs import makefs_argv
from tasks.images.ffs_reader import FS_DOSOFTDEP, FS_DOWAPBL, FS_FLAGS_AT, FfsImage
from tasks.recipes.managed_record import RECORD
from tasks.run.errors import DomusError
from tests.conftest import REPO
from tests.mounting import needs_root, sha
from tests.netbsd_rules import assert_netbsd_accepts
from tests.sealed_job import stopped_at
from tests.sites import Site
from tests.test_converge import SITE_LINE, assert_flag_refused, change_site
from tests.test_faults import LEFTOVER, domus, kill_after, seeds, start, timed
from tests.unprivileged import NOBODY

MiB = 1 << 20
STAMP = "20261202T101010"
# (path, type, uid, gid, mode, extra words); files get their content from CONTENT
NAMES = {
    "space": "a name with spaces",
    "newline": "new\nline",
    "latin": b"caf\xe9 \xff".decode(errors="surrogateescape"),
    "tab": "tab\there",
}


def rich_tree(top: Path, big: int, small: int) -> list[str]:
    """Every kind of entry under `top`, and the mtree spec lines that give their metadata."""
    lines = [". type=dir uid=0 gid=0 mode=0755"]

    def add(path: str, kind: str, uid: int, gid: int, mode: int, *words: str) -> None:
        lines.append(
            f"./{encode(path)} type={kind} uid={uid} gid={gid} mode={mode:04o} {' '.join(words)}"
        )

    def directory(path: str, uid: int = 0, gid: int = 0, mode: int = 0o755) -> None:
        (top / path).mkdir(parents=True, exist_ok=True)
        add(path, "dir", uid, gid, mode)

    def file(path: str, data: bytes, uid: int = 0, gid: int = 0, mode: int = 0o644) -> None:
        (top / path).write_bytes(data)
        add(path, "file", uid, gid, mode)

    for path in ("etc", "var", "var/empty", "var/empty/nested", "var/many", "tmp", "dev", "srv"):
        directory(path)
    directory("tmp/sticky", mode=0o1777)
    directory("srv/private", uid=1000, gid=1000, mode=0o700)
    file("etc/rc.conf", b"hostname=www1\nhttpd=YES\n", 0, 5, 0o640)
    file("etc/passwd", b"root:*:0:0::/root:/bin/sh\n")
    # hard links across directories, one of them to a managed file
    file("srv/shared", b"three names, one inode\n", 1000, 100, 0o4755)
    for other in ("var/shared", "etc/shared"):
        os.link(top / "srv/shared", top / other)
        add(other, "file", 1000, 100, 0o4755)
    os.link(top / "etc/rc.conf", top / "var/rc.conf.link")
    add("var/rc.conf.link", "file", 0, 5, 0o640)
    modes = [0o4755, 0o2711, 0o1644, 0o0000, 0o0777, 0o7777, 0o0400]
    owners = [(0, 0), (65534, 65534), (4000000000, 3999999999), (1001, 0)]
    for index, mode in enumerate(modes):
        uid, gid = owners[index % len(owners)]
        file(f"var/mode-{mode:04o}", f"mode {mode:o}\n".encode(), uid, gid, mode)
    for key, name in NAMES.items():
        file(f"var/{name}", key.encode(), 0, 0, 0o644)
    directory(f"srv/{NAMES['newline']} dir")
    add("var/fast", "link", 0, 0, 0o755, "link=rc.conf")
    os.symlink("rc.conf", top / "var/fast")
    target = "/" + "long/" * 20 + "target"
    add("var/slow", "link", 0, 0, 0o777, f"link={encode(target)}")
    os.symlink(target, top / "var/slow")
    weird = NAMES["latin"] + "\n"
    add("var/weird-link", "link", 0, 0, 0o777, f"link={encode(weird)}")
    os.symlink(os.fsencode(weird), os.fsencode(top / "var/weird-link"))
    add("dev/tty0", "char", 0, 4, 0o620, "device=netbsd,142,65")
    add("dev/xbd1a", "block", 0, 5, 0o640, "device=netbsd,142,1048575")
    add("dev/initctl", "fifo", 0, 0, 0o600)
    # hard-linked FIFOs and device nodes (makefs links only what the staged tree links)
    nodes = [
        ("fifo", stat.S_IFIFO, "dev/pipe", "var/pipe.link", 0o620, ""),
        ("char", stat.S_IFCHR, "dev/ttyE1", "dev/console.link", 0o600, "device=netbsd,47,1"),
        ("block", stat.S_IFBLK, "dev/ld0a", "var/root.link", 0o640, "device=netbsd,19,0"),
    ]
    for kind, fmt, first, second, mode, device in nodes:
        os.mknod(top / first, fmt | 0o600)
        os.link(top / first, top / second)
        for path in (first, second):
            add(path, kind, 0, 5, mode, device)
    rng = random.Random(11)
    file("var/big", rng.randbytes(big), 0, 0, 0o600)
    for index in range(small):
        folder = f"var/many/d{index // 100:03d}"
        if index % 100 == 0:
            directory(folder)
        file(f"{folder}/f{index}", rng.randbytes(index % 2000))
    return lines


# the FIFO and device nodes rich_tree() links
LINKED_NODES = [
    (b"dev/pipe", b"var/pipe.link"),
    (b"dev/console.link", b"dev/ttyE1"),
    (b"dev/ld0a", b"var/root.link"),
]


def inode_at(image: Path, path: bytes) -> tuple[int, str]:
    with FfsImage(image) as ffs:
        return ffs.inode_offset(ffs.entry(path).inode), "<"


def patch_inode(image: Path, path: bytes, *, flags: int, mtime_ns: int, atime: int) -> None:
    """What makefs cannot write, set in the old image (what a NetBSD domU would leave)."""
    at, end = inode_at(image, path)
    with open(image, "r+b") as f:
        f.seek(at + 16)
        f.write(struct.pack(f"{end}ii", atime, 123))
        f.seek(at + 28)
        f.write(struct.pack(f"{end}i", mtime_ns))
        f.seek(at + 100)
        f.write(struct.pack(f"{end}I", flags))


def build_rich(tmp: Path, big: int = 100 * MiB, small: int = 10_000, size: str = "256m") -> Path:
    staging = tmp / "staging"
    staging.mkdir()
    spec = tmp / "spec"
    spec.write_text("#mtree v2.0\n" + "\n".join(rich_tree(staging, big, small)) + "\n")
    image = tmp / "local.img"
    subprocess.run(
        ["makefs", "-t", "ffs", "-B", "le", "-o", "version=1", "-s", size, "-F", str(spec),
         "-x", str(image), str(staging)],
        check=True, capture_output=True,
    )  # fmt: skip
    shutil.rmtree(staging)
    # chflags: schg,nodump on the hard-linked file, uappnd on a log; nanoseconds; atime
    patch_inode(image, b"srv/shared", flags=0x00020000 | 0x1, mtime_ns=5, atime=1_500_000_000)
    patch_inode(image, b"var/mode-0400", flags=0x4, mtime_ns=999_999_999, atime=7)
    return image


def described(image: Path) -> tuple[dict[bytes, tuple[object, ...]], set[frozenset[bytes]]]:
    """Every entry but what a rewrite does not keep (inode numbers, ctime, generation;
    a directory's size), and the hard-link groups."""
    found: dict[bytes, tuple[object, ...]] = {}
    by_inode: dict[int, set[bytes]] = {}
    with FfsImage(image) as ffs:
        for e in ffs.entries():
            digest = hashlib.sha256(ffs.read(e)).hexdigest() if e.type == "file" else None
            size = None if e.type == "dir" else e.size
            found[e.path] = (e.type, e.mode, e.uid, e.gid, e.flags, e.mtime, e.mtime_ns,
                             e.atime, e.atime_ns, e.link, e.rdev, size, digest)  # fmt: skip
            by_inode.setdefault(e.inode, set()).add(e.path)
    return found, {frozenset(paths) for paths in by_inode.values() if len(paths) > 1}


def tsk_listing(image: Path) -> set[str]:
    out = subprocess.run(
        ["fls", "-f", "ufs", "-r", "-p", str(image)], check=True, capture_output=True
    ).stdout.decode(errors="surrogateescape")
    return {
        line.split("\t", 1)[0].split()[0] + " " + line.split("\t", 1)[1]
        for line in out.split("\n")
        if "\t" in line and not line.startswith("V/V")
    }


def converge(
    image: Path, changes_for, keep_images: int = 1, stamp: str = STAMP
) -> tuple[list[str], list[str]]:
    with opened(image, keep_images) as files:
        current = files.read_all(["etc/rc.conf", "etc/domus/motd", "etc/passwd"])
        changes = changes_for(current)
        backups = files.apply(changes, stamp, 5)
        return backups, files.pruned


def managed_changes(current: dict[str, FileState | None]) -> list[Change]:
    rc = current["etc/rc.conf"]
    assert rc is not None and (rc.mode, rc.uid, rc.gid) == (0o640, 0, 5)
    assert current["etc/domus/motd"] is None
    return [
        Change("etc/domus/motd", None, FileState(b"managed\n", 0o644, 0, 0)),
        Change("etc/rc.conf", rc, FileState(rc.data.replace(b"YES", b"NO"), 0o640, 0, 5)),
    ]


def assert_netbsd_rules(image: Path, every_file: bool) -> None:
    """NetBSD's rules; `every_file`: and every file read back by The Sleuth Kit, one icat
    each, which for ten thousand files takes longer than the rest of the test."""
    if every_file:
        assert_netbsd_accepts(image, "ffs")
        return
    with open(image, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        assert ffs_problems(data) == []


@pytest.mark.parametrize(
    ("big", "small", "size"),
    [(1 * MiB, 50, "16m"), (100 * MiB, 10_000, "256m")],
    ids=["small", "100MB-and-10000-files"],
)
def test_a_rich_image_survives_a_rewrite_identical_but_the_managed_files(
    tmp_path, big, small, size
):
    image = build_rich(tmp_path, big, small, size)
    every_file = small < 1000
    assert_netbsd_rules(image, every_file)
    with FfsImage(image) as ffs:
        params = ffs.params
        assert ffs.entry(b"srv/shared").flags == 0x00020001  # the patch took
    old, old_groups = described(image)
    old_listing = tsk_listing(image)
    old_sha = sha(image)

    backups, _ = converge(image, managed_changes)

    backup = f"etc/rc.conf.domus-{STAMP}"
    assert backups == [backup]
    new, new_groups = described(image)
    added = {backup.encode(), b"etc/domus", b"etc/domus/motd"}
    assert set(new) == set(old) | added
    for path, meta in old.items():
        if path != b"etc/rc.conf":
            assert new[path] == meta, path
    assert new[backup.encode()] == old[b"etc/rc.conf"]  # the old file itself
    with FfsImage(image) as ffs:
        assert ffs.read(ffs.entry(b"etc/rc.conf")) == b"hostname=www1\nhttpd=NO\n"
        rc = ffs.entry(b"etc/rc.conf")
        assert (rc.mode, rc.uid, rc.gid) == (0o640, 0, 5)
        motd = ffs.entry(b"etc/domus/motd")
        assert (motd.mode, motd.uid, motd.gid, ffs.read(motd)) == (0o644, 0, 0, b"managed\n")
        assert ffs.entry(b"etc/domus").mode == 0o755
        assert ffs.params == params  # same size, blocks, fragments, inode density, ...
        assert {ffs.entry(name).nlink for names in LINKED_NODES for name in names} == {2}
    # the managed file's other name keeps the old inode, with its backup
    linked = {b"var/rc.conf.link", b"etc/rc.conf"}
    assert old_groups - {frozenset(linked)} == new_groups - {
        frozenset({b"var/rc.conf.link", backup.encode()})
    }
    assert frozenset({b"var/rc.conf.link", backup.encode()}) in new_groups
    # an independent reader sees the same tree
    shown = {line.replace("^", "\n") for line in tsk_listing(image)}
    assert {line.replace("^", "\n") for line in old_listing} <= shown
    assert_netbsd_rules(image, every_file)
    kept = kept_images(image)
    assert [p.name for p in kept] == [f"local-converge-{STAMP}.img"]
    assert sha(kept[0]) == old_sha
    assert not list(tmp_path.glob(".plaintext.*"))


def small_image(tmp_path: Path) -> Path:
    return build_rich(tmp_path, big=64 * 1024, small=20, size="8m")


def test_the_verification_finds_hard_links_split_whatever_the_type(tmp_path):
    image = small_image(tmp_path)
    staging = tmp_path / "tree"
    staging.mkdir()
    with FfsImage(image) as reader:
        tree = Staged.of(reader, list(reader.entries()), staging)
        size = reader.params.size
    spec = tmp_path / "new.spec"
    spec.write_text(tree.spec())
    # the image a rewrite that made each FIFO and device node from the spec alone would make
    for names in LINKED_NODES:
        for name in names:
            (staging / os.fsdecode(name)).unlink(missing_ok=True)
    split = tmp_path / "split.img"
    subprocess.run(makefs_argv(spec, size, split, staging), check=True, capture_output=True)
    write_inode_fields(split, tree.expected_entries())
    assert sorted(tree.verify(split)) == sorted(
        f"the hard links differ: /{first.decode()}, /{second.decode()} are no longer one inode"
        for first, second in LINKED_NODES
    )


def test_old_images_are_kept_to_converge_keep_images(tmp_path):
    image = small_image(tmp_path)
    first = sha(image)

    def change(text: bytes):
        def changes_for(current):
            rc = current["etc/rc.conf"]
            return [Change("etc/rc.conf", rc, FileState(text, rc.mode, rc.uid, rc.gid))]

        return changes_for

    converge(image, change(b"one\n"))
    second = sha(image)
    converge(image, change(b"two\n"), stamp="20261202T111111")
    kept = kept_images(image)
    assert [p.name for p in kept] == ["local-converge-20261202T111111.img"]
    assert sha(kept[0]) == second != first
    converge(image, change(b"three\n"), keep_images=0, stamp="20261202T121212")
    assert kept_images(image) == []
    assert_netbsd_accepts(image, "ffs")


def _patched_superblock(image: Path, offset: int, value: bytes) -> None:
    with open(image, "r+b") as f:
        f.seek(SBLOCK_UFS1 + offset)
        f.write(value)


def _make_socket(image: Path) -> None:
    at, end = inode_at(image, b"dev/initctl")
    with open(image, "r+b") as f:
        f.seek(at)
        f.write(struct.pack(f"{end}H", stat.S_IFSOCK | 0o600))


REFUSALS = {
    "unclean": (lambda img: _patched_superblock(img, 209, b"\0"), "not marked clean"),
    "wapbl": (
        lambda img: _patched_superblock(img, FS_FLAGS_AT, FS_DOWAPBL.to_bytes(4, "little")),
        "WAPBL log",
    ),
    "softdep": (
        lambda img: _patched_superblock(img, FS_FLAGS_AT, FS_DOSOFTDEP.to_bytes(4, "little")),
        "soft dependencies",
    ),
    "acls": (
        lambda img: _patched_superblock(img, FS_FLAGS_AT, (0x10).to_bytes(4, "little")),
        "ACLs",
    ),
    "quota2": (
        lambda img: _patched_superblock(img, FS_FLAGS_AT, (0x200).to_bytes(4, "little")),
        "quotas",
    ),
    "label": (lambda img: _patched_superblock(img, 680, b"data\0"), "volume label"),
    "socket": (_make_socket, "is a socket, which makefs cannot make"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_what_cannot_be_rewritten_exactly_is_refused_before_anything_is_written(tmp_path, case):
    image = small_image(tmp_path)
    damage, words = REFUSALS[case]
    damage(image)
    before = sha(image)
    with pytest.raises(DomusError) as caught:
        converge(image, managed_changes)
    error = caught.value
    assert words in error.message and str(image) in error.message
    assert "as root on the NetBSD dom0" in (error.hint or "")
    assert "reprovision" in (error.hint or "")
    assert sha(image) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["local.img", "spec"]


def test_a_device_node_with_two_names_is_refused_without_root(tmp_path, monkeypatch):
    image = small_image(tmp_path)
    before = sha(image)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)  # mknod(2) of a device needs root
    with pytest.raises(DomusError) as caught:
        converge(image, managed_changes)
    assert re.search(r"device node /dev/\S+ has 2 names", caught.value.message)
    assert str(image) in caught.value.message
    assert sha(image) == before
    assert kept_images(image) == []


def test_ffsv2_and_extended_attributes_are_refused(tmp_path):
    for version, extra, words in ((2, "", "FFSv2"), (1, ".attribute", "/.attribute")):
        top = tmp_path / f"v{version}{extra}"
        (top / "tree" / "etc").mkdir(parents=True)
        (top / "tree" / "etc" / "rc.conf").write_text("x\n")
        if extra:
            (top / "tree" / extra).mkdir()
        image = top / "local.img"
        subprocess.run(
            ["makefs", "-t", "ffs", "-o", f"version={version}", "-s", "4m", str(image),
             str(top / "tree")],
            check=True, capture_output=True,
        )  # fmt: skip
        before = sha(image)
        with pytest.raises(DomusError, match=words) as caught:
            converge(image, managed_changes)
        assert "as root on the NetBSD dom0" in (caught.value.hint or "")
        assert sha(image) == before


def test_contents_that_do_not_fit_in_the_same_size_are_refused(tmp_path):
    image = small_image(tmp_path)
    before = sha(image)

    def too_big(current):
        return [Change("etc/huge", None, FileState(os.urandom(9 * MiB), 0o644, 0, 0))]

    with pytest.raises(DomusError, match="cannot be rewritten in its own size") as caught:
        converge(image, too_big)
    assert "nothing was changed" in caught.value.message
    assert sha(image) == before
    assert kept_images(image) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["local.img", "spec"]


def test_a_big_endian_image_stays_big_endian(tmp_path):
    (tmp_path / "tree" / "etc").mkdir(parents=True)
    (tmp_path / "tree" / "etc" / "rc.conf").write_text("httpd=YES\n")
    spec = tmp_path / "spec"
    spec.write_text(
        "#mtree v2.0\n. type=dir uid=0 gid=0 mode=0755\n./etc type=dir uid=0 gid=0 mode=0755\n"
        "./etc/rc.conf type=file uid=0 gid=5 mode=0640\n"
    )
    image = tmp_path / "local.img"
    subprocess.run(
        ["makefs", "-t", "ffs", "-B", "be", "-o", "version=1", "-s", "4m", "-F", str(spec),
         str(image), str(tmp_path / "tree")],
        check=True, capture_output=True,
    )  # fmt: skip
    converge(image, managed_changes)
    with FfsImage(image) as ffs:
        assert ffs.params.order == "big"
        assert ffs.read(ffs.entry(b"etc/rc.conf")) == b"httpd=NO\n"
    assert_netbsd_accepts(image, "ffs")


# -- through ./domus, on the example site ----------------------------------------------------


def reader_of(image: Path) -> dict[bytes, tuple[object, ...]]:
    return described(image)[0]


def check_site_converged(
    image: Path, before: dict[bytes, tuple[object, ...]], rc_conf: bool = True
) -> None:
    """change_site() made: the site's fstab template and motd.domus for every domU, and
    (`rc_conf`) an rc.conf variable of this one."""
    after = reader_of(image)
    # the record names the new motd.domus
    managed = {b"etc/fstab", RECORD.encode(), *([b"etc/rc.conf"] if rc_conf else [])}
    backups = {p for p in after if b".domus-" in p}
    assert {p.split(b".domus-")[0] for p in backups} == managed
    for backup in backups:
        assert after[backup] == before[backup.split(b".domus-")[0]], backup
    for path, meta in before.items():
        if path not in managed and path != b"etc":
            assert after[path] == meta, path
    assert set(after) == set(before) | backups | {b"etc/motd.domus"}
    with FfsImage(image) as ffs:
        assert ffs.read(ffs.entry(b"etc/fstab")).decode().endswith(SITE_LINE)
    assert_netbsd_accepts(image, "ffs")


@needs_root
def test_the_example_sites_ffs_domus_converge_on_linux_after_a_local_template_change(tmp_path):
    site = Site(tmp_path / "site")
    site.build()
    ffs = [
        name
        for name, entry in site.data["domains"].items()
        if ((entry or {}).get("local") or {}).get("fs", "ffs") == "ffs"
    ]
    assert len(ffs) >= 2
    images = {name: site.image(name, "local.img") for name in ffs}
    before = {name: reader_of(image) for name, image in images.items()}
    olds = {name: sha(image) for name, image in images.items()}
    change_site(site, "www1")
    run = site.build()
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.ran >= {f"local:{name}" for name in images}
    assert run.stderr.count("(rewrite)") == len(images)
    for name, image in images.items():
        check_site_converged(image, before[name], rc_conf=name == "www1")
        assert [sha(p) for p in kept_images(image)] == [olds[name]]
    with FfsImage(images["www1"]) as ffs:
        assert b"httpd=NO\n" in ffs.read(ffs.entry(b"etc/rc.conf"))
    assert site.build().ran == set()
    assert not list(site.output.rglob(".plaintext.*"))


@needs_root
def test_a_refusal_through_domus_build_names_the_image_and_changes_nothing(tmp_path):
    site = Site(tmp_path / "site")
    site.build()
    image = site.image("www1", "local.img")
    _patched_superblock(image, 209, b"\0")  # as a domU that did not shut down leaves it
    before = sha(image)
    change_site(site, "www1")
    run = site.doit()
    assert run.returncode != 0
    assert f"{image} cannot be rewritten exactly without mounting it" in run.stdout
    assert "not marked clean" in run.stdout and "shut it down cleanly" in run.stdout
    assert "Traceback" not in run.stdout + run.stderr
    assert sha(image) == before
    assert kept_images(image) == []
    assert not list(site.output.rglob(".plaintext.*"))


def set_flags(image: Path, path: bytes, flags: int) -> None:
    """chflags in a domU: di_flags of the inode at `path`."""
    at, end = inode_at(image, path)
    with open(image, "r+b") as f:
        f.seek(at + 100)
        f.write(struct.pack(f"{end}I", flags))


# (the flagged path, its di_flags, what the refusal names, the hint's command)
LOCKS = {
    "schg": (b"etc/rc.conf", 0x00020000, "/etc/rc.conf is flagged schg", "noschg /etc/rc.conf"),
    "uappnd": (b"etc/rc.conf", 0x4, "/etc/rc.conf is flagged uappnd", "nouappnd /etc/rc.conf"),
    "sappnd-directory": (b"etc", 0x00040000, "/etc is flagged sappnd (holding", "nosappnd /etc"),
    "uchg-directory": (b"etc", 0x2 | 0x1, "/etc is flagged uchg (holding", "nouchg /etc"),
}


@needs_root
@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_an_immutable_or_append_only_managed_file_is_refused_before_anything_is_written(
    tmp_path, lock
):
    site = Site(tmp_path / "site")
    site.data["domains"] = {"www1": site.data["domains"]["www1"]}
    site.save()
    site.build()
    image = site.image("www1", "local.img")
    path, flags, named, command = LOCKS[lock]
    set_flags(image, path, flags)
    run = assert_flag_refused(site, image, named, f"clear the flag in the domU: chflags {command}")
    assert "securelevel" in run.stdout
    assert kept_images(image) == []
    assert not list(site.output.rglob(".plaintext.*"))


@needs_root
def test_a_flagged_managed_file_that_needs_no_change_does_not_stop_the_others(tmp_path):
    site = Site(tmp_path / "site")
    site.data["domains"] = {"www1": site.data["domains"]["www1"]}
    site.save()
    site.build()
    image = site.image("www1", "local.img")
    set_flags(image, b"etc/fstab", 0x00020000)
    site.data["domains"]["www1"]["rc_conf"]["httpd"] = "NO"
    site.save()
    assert "(rewrite)" in site.build().stderr
    with FfsImage(image) as ffs:
        assert ffs.entry(b"etc/fstab").flags == 0x00020000  # carried over, unchanged
        assert b"httpd=NO\n" in ffs.read(ffs.entry(b"etc/rc.conf"))


@needs_root
def test_dry_run_reads_an_ffs_image_on_linux_and_touches_nothing(tmp_path):
    site = Site(tmp_path / "site")
    site.build()
    image = site.image("www2", "local.img")
    site.data["domains"]["www2"]["rc_conf"]["httpd"] = "NO"
    site.save()
    before = (sha(image), image.stat().st_mtime_ns)
    done = subprocess.run(
        [str(REPO / "domus"), "converge", "--dry-run", "www2", f"config={site.path}"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "-httpd=YES\n+httpd=NO\n" in done.stdout
    assert "www2:/etc/rc.conf" in done.stdout
    assert (sha(image), image.stat().st_mtime_ns) == before
    assert kept_images(image) == []


@needs_root
def test_an_ffs_image_converges_without_root(public_tmp, nobody):
    site = Site(public_tmp / "site", nobody.example_site())
    site.build()
    image = site.image("www1", "local.img")
    before = reader_of(image)
    change_site(site, "www1")
    subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", str(public_tmp)], check=True)
    done = nobody.doit(f"config={site.path}", home=public_tmp)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "(rewrite)" in done.stderr
    assert (image.stat().st_uid, image.stat().st_mode & 0o777) == (NOBODY, 0o600)  # private
    check_site_converged(image, before)


@needs_root
def test_an_encrypted_ffs_image_converges_through_domus_decrypt_and_seal(tmp_path):
    site = Site(tmp_path / "site")
    site.data["domains"]["www1"]["local"] = {"encrypt": "dom0"}
    site.save()
    site.build()
    image = site.image("www1", "local.img")
    params = parse((site.directory / "keys" / "www1-local.params").read_text())
    plain = tmp_path / "plain.img"
    decrypt_file(params, image, plain)
    before = reader_of(plain)
    old = sha(image)
    change_site(site, "www1")
    run = site.build()
    assert "local:www1" in run.ran and "(sealed)" in run.stderr, run.stdout + run.stderr
    with open(image, "rb") as f:
        assert not has_ffs_superblock(f.read(1 << 20))  # still sealed
    decrypt_file(params, image, plain)
    check_site_converged(plain, before)
    assert [sha(p) for p in kept_images(image)] == [old]
    assert not list(site.output.rglob(".plaintext.*"))


# -- a kill at any moment ------------------------------------------------------------------


@needs_root
def test_a_kill_mid_rewrite_leaves_the_old_image_in_place_or_the_converged_one(tmp_path):
    site = Site(tmp_path / "site")
    site.build()
    image = site.image("www1", "local.img")
    before = reader_of(image)
    pristine = tmp_path / "pristine.img"
    shutil.copyfile(image, pristine)
    old = sha(image)
    change_site(site, "www1")
    duration = timed("converge", "www1", site=site)
    check_site_converged(image, before)
    outcomes: dict[int, str] = {}
    for seed in seeds(4):
        for kept in kept_images(image):
            kept.unlink()
        shutil.copyfile(pristine, image)
        kill_after(start("converge", "www1", site=site), random.Random(seed).uniform(0, duration))
        if sha(image) == old:
            outcomes[seed] = "before"
        else:
            check_site_converged(image, before)
            outcomes[seed] = "after"
        rerun = domus("converge", "www1", site=site)  # cleans up what the kill left
        assert rerun.returncode == 0, f"seed {seed}: {rerun.stdout}{rerun.stderr}"
        check_site_converged(image, before)
        assert not [p for p in site.output.rglob("*") if LEFTOVER.search(p.name)]
        assert not list(site.output.rglob(".plaintext.*"))
    print(f"rewrite converge kills: {outcomes}")


@needs_root
@pytest.mark.parametrize("point", ["decrypted", "converged", "sealed"])
def test_a_kill_mid_encrypted_rewrite_keeps_the_image_and_the_plaintext_private(tmp_path, point):
    site = Site(tmp_path / "site")
    site.data["domains"]["www1"]["local"] = {"encrypt": "dom0"}
    site.save()
    site.build()
    image = site.image("www1", "local.img")
    before = sha(image)
    change_site(site, "www1")
    mark = tmp_path / "mark"
    process = stopped_at(site.path, "www1", mark, point)
    plain = next(image.parent.glob(".plaintext.*"))
    private = [plain, *plain.rglob("*")]
    assert stat.S_IMODE(plain.stat().st_mode) == 0o700
    for path in private:  # the staged tree too: every entry only root's
        if not path.is_symlink():
            assert path.stat().st_mode & 0o077 == 0, path
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert sha(image) == before
    run = site.build()
    assert f"removed {plain}, plaintext a killed run left" in run.stderr
    assert not list(site.output.rglob(".plaintext.*"))
    params = parse((site.directory / "keys" / "www1-local.params").read_text())
    decrypt_file(params, image, tmp_path / "plain.img")
    with FfsImage(tmp_path / "plain.img") as ffs:
        assert ffs.read(ffs.entry(b"etc/fstab")).decode().endswith(SITE_LINE)
    assert_netbsd_accepts(tmp_path / "plain.img", "ffs")
