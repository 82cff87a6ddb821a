"""A domU's first day, then a converge: nothing the domU wrote is lost or changed.

The example site is built; each local.img then gets what a NetBSD domU writes on its first
day (pid files, logs, databases, mail, temporary files; a package's user and its files;
hard links; a hard-linked FIFO; immutable files domus does not manage), written as the
domU's kernel would leave them: through debugfs on ext2fs, through a restage and makefs
on FFS (the rewrite converge's own staging, with di_flags written into the inodes). A
local template then changes and `./domus build` converges every local.img. Everything
the domU wrote is read back: content, owner, mode, flags, link counts, the FIFO; and the
image keeps room to live in (10 % of its inodes and blocks free).
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from tasks.converge.debugfs import run_debugfs
from tasks.converge.rewrite import (
    Planned,
    Staged,
    _write,
    inode_spacings,
    makefs,
    same_shape,
    write_inode_fields,
)
from tasks.images.ffs_reader import FS_OLD_CSTOTAL_AT, FS_OLD_DSIZE_AT, FfsEntry, FfsImage
from tests.netbsd_rules import assert_netbsd_accepts
from tests.sites import Site
from tests.test_cli import domus

LOCALS = {"www1": "ffs", "www2": "ffs", "db1": "ext2fs"}
MOTD = "Welcome to a domU of the example site: the motd is now the site's.\n"
# The package's user, as pkgsrc's USER/GROUP handling adds it.
HELLO_UID = HELLO_GID = 1001
MASTER_PASSWD = "_hello:*:1001:1001::0:0:hello daemon:/var/db/hello:/sbin/nologin\n"
PASSWD = "_hello:*:1001:1001:hello daemon:/var/db/hello:/sbin/nologin\n"
GROUP = "_hello:*:1001:\n"
# chflags(2): schg (SF_IMMUTABLE) and uchg (UF_IMMUTABLE) in FFS's di_flags; ext2's
# EXT2_IMMUTABLE_FL, which NetBSD's ext2fs maps to both.
SF_IMMUTABLE, UF_IMMUTABLE, EXT2_IMMUTABLE_FL = 0x00020000, 0x00000002, 0x10
ROOM = 0.10


@dataclass(frozen=True)
class Node:
    """One entry as the domU leaves it; `same` names the entry it is a hard link of."""

    type: str  # dir, file, fifo
    mode: int
    uid: int = 0
    gid: int = 0
    data: bytes = b""
    flags: int = 0  # FFS di_flags, or ext2 i_flags
    same: str | None = None


@dataclass
class FirstDay:
    nodes: dict[str, Node] = field(default_factory=dict)
    appended: dict[str, bytes] = field(default_factory=dict)  # existing file -> lines added

    def add(self, path: str, node: Node) -> None:
        self.nodes[path] = node

    @property
    def links(self) -> dict[str, int]:
        """path -> the link count the domU left it with."""
        counts: dict[str, int] = {}
        for path, node in self.nodes.items():
            if node.type != "dir":
                first = node.same or path
                counts[first] = counts.get(first, 0) + 1
        return {p: counts[n.same or p] for p, n in self.nodes.items() if n.type != "dir"}


def bulk_files() -> list[tuple[str, Node]]:
    """The many small files of a day, the kinds interleaved (so a day cut short by a full
    inode table still has some of each): pid files, logs, a package's databases, mail,
    temporary files."""
    hello = {"uid": HELLO_UID, "gid": HELLO_GID}
    kinds = [
        [
            (f"var/run/daemon{i:03d}.pid", Node("file", 0o644, data=f"{300 + i}\n".encode()))
            for i in range(150)
        ],
        [
            (
                f"var/log/hello/hello{i:03d}.log",
                Node("file", 0o640, data=log_lines(i).encode(), **hello),
            )
            for i in range(100)
        ],
        [
            (
                f"var/db/hello/state{i:03d}.db",
                Node(
                    "file", 0o600, data=hashlib.sha256(b"%d" % i).digest() * (1 + i % 50), **hello
                ),
            )
            for i in range(120)
        ],
        [
            (
                f"var/mail/user{i:02d}",
                Node("file", 0o600, uid=HELLO_UID if i % 2 else 0, data=mail(i).encode()),
            )
            for i in range(40)
        ],
        [
            (
                f"tmp/.hello/session{i:03d}",
                Node("file", 0o600, data=hashlib.sha256(b"session%d" % i).digest() * i, **hello),
            )
            for i in range(100)
        ],
    ]
    files = []
    for i in range(max(len(kind) for kind in kinds)):
        files += [kind[i] for kind in kinds if i < len(kind)]
    return files


def log_lines(i: int) -> str:
    return "".join(f"Dec  7 00:{m:02d}:00 www hello[{i}]: line {m}\n" for m in range(i % 40))


def mail(i: int) -> str:
    return f"From root@www Mon Dec  7 00:00:{i:02d} 2026\nSubject: {i}\n\nmessage {i}\n"


FULL_DAY = len(bulk_files())
# inodes the day needs beyond its bulk files (its directories, FIFO, immutable files), and
# what the converge then needs (the new managed file)
DAY_INODES, CONVERGE_INODES = 8, 4


def first_day(fs: str, files: int = FULL_DAY) -> FirstDay:
    """What a NetBSD domU writes on its first day: `files` of the bulk (several hundred in
    a full day) and the rest."""
    day = FirstDay()
    hello = {"uid": HELLO_UID, "gid": HELLO_GID}
    day.add("var/log/hello", Node("dir", 0o750, **hello))
    day.add("var/db/hello", Node("dir", 0o750, **hello))
    day.add("var/mail", Node("dir", 0o1777))  # the example tree has none: a release's has
    day.add("tmp/.hello", Node("dir", 0o1777))
    for path, node in bulk_files()[:files]:
        day.add(path, node)
    # a log rotated by renaming keeps a second name; a database kept under three
    day.add(
        "var/log/hello/current.log",
        replace(day.nodes["var/log/hello/hello000.log"], same="var/log/hello/hello000.log"),
    )
    for name in ("latest", "archive"):
        day.add(
            f"var/db/hello/{name}.db",
            replace(day.nodes["var/db/hello/state000.db"], same="var/db/hello/state000.db"),
        )
    # a FIFO the daemon talks through, with a second name
    day.add("var/run/hello.fifo", Node("fifo", 0o620, **hello))
    day.add("var/run/hello.ctl", Node("fifo", 0o620, same="var/run/hello.fifo", **hello))
    # files made immutable by the administrator: not managed, and never to be changed
    if fs == "ffs":
        day.add("var/db/hello/pinned.db", Node("file", 0o400, data=b"pinned\n", flags=SF_IMMUTABLE))
        day.add("var/log/hello/audit.log", Node("file", 0o600, data=b"audit\n", flags=UF_IMMUTABLE))
    else:
        day.add(
            "var/db/hello/pinned.db",
            Node("file", 0o400, data=b"pinned\n", flags=EXT2_IMMUTABLE_FL),
        )
    day.appended = {
        "etc/master.passwd": MASTER_PASSWD.encode(),
        "etc/passwd": PASSWD.encode(),
        "etc/group": GROUP.encode(),
    }
    return day


# --- writing it as the domU would ----------------------------------------------------------


def write_ffs(image: Path, day: FirstDay, work: Path) -> None:
    """Restage the image with the rewrite converge's staging, add the day, makefs anew with
    the old superblock's shape, write di_flags and times into the inodes."""
    with FfsImage(image) as reader:
        params = reader.params
        staging = work / "tree"
        staging.mkdir()
        tree = Staged.of(reader, list(reader.entries()), staging)
    now = int(os.path.getmtime(image))
    for path, data in day.appended.items():
        key = path.encode()
        old = tree.planned[key]
        content = Path(os.fsdecode(tree.host(key))).read_bytes() + data
        os.unlink(tree.host(key))
        digest = _write(tree.host(key), [content])
        entry = replace(old.entry, size=len(content))
        tree.planned[key] = Planned(entry, digest, ("day", key))
    for path, node in day.nodes.items():
        key = path.encode()
        host = tree.host(key)
        entry = FfsEntry(
            path=key, type=node.type, mode=node.mode, uid=node.uid, gid=node.gid,
            size=len(node.data), mtime=now, mtime_ns=0, atime=now, atime_ns=0, ctime=now,
            ctime_ns=0, nlink=1, inode=0, generation=0, flags=node.flags, blocks=0,
        )  # fmt: skip
        if node.same is not None:
            first = tree.planned[node.same.encode()]
            os.link(tree.host(node.same.encode()), host)
            tree.planned[key] = replace(first, entry=replace(first.entry, path=key))
            continue
        digest = None
        if node.type == "dir":
            os.mkdir(host, 0o700)
        elif node.type == "fifo":
            os.mkfifo(host, 0o600)
        else:
            digest = _write(host, [node.data])
        tree.planned[key] = Planned(entry, digest, ("day", key))
    spec = work / "spec"
    spec.write_text(tree.spec())
    built = work / "new.img"
    for fragments in inode_spacings(params):
        makefs(params, fragments, image.stat().st_size, spec, staging, built)
        with FfsImage(built) as made:
            if same_shape(made.params, params):
                break
    else:
        pytest.fail(f"makefs did not make {image.name}'s shape again")
    write_inode_fields(built, tree.expected_entries())
    os.replace(built, image)


def write_ext2fs(image: Path, day: FirstDay, work: Path) -> None:
    """debugfs writes what the domU's kernel would: new inodes, owners, modes, flags, and
    the link counts of the names it adds."""
    current, _ = run_debugfs(image, [f"cat /{path}" for path in day.appended])
    commands = []
    for index, (path, data) in enumerate(day.appended.items()):
        host = work / f"appended{index}"
        host.write_bytes(current[f"cat /{path}"].encode() + data)
        stat_out, _ = run_debugfs(image, [f"stat /{path}"])
        mode = int(re.search(r"Mode:\s+(\d+)", stat_out[f"stat /{path}"])[1], 8)
        commands += [
            f"rm /{path}",
            f"write {host} /{path}",
            f"sif /{path} mode 0{0o100000 | mode:o}",
        ]
    links = day.links
    for index, (path, node) in enumerate(day.nodes.items()):
        if node.same is not None:
            commands.append(f"ln /{node.same} /{path}")
            continue
        kind = {"dir": 0o040000, "file": 0o100000, "fifo": 0o010000}[node.type]
        if node.type == "dir":
            commands.append(f"mkdir /{path}")
        elif node.type == "fifo":
            parent, _, base = path.rpartition("/")
            # debugfs' mknod takes the new name as it is, in the current directory
            commands += [f"cd /{parent}", f"mknod {base} p", "cd /"]
        else:
            host = work / f"file{index}"
            host.write_bytes(node.data)
            commands.append(f"write {host} /{path}")
        commands += [
            f"sif /{path} mode 0{kind | node.mode:o}",
            f"sif /{path} uid {node.uid}",
            f"sif /{path} gid {node.gid}",
        ]
        if node.type != "dir":
            commands.append(f"sif /{path} links_count {links[path]}")
        if node.flags:
            commands.append(f"sif /{path} flags {node.flags:#x}")
    _, errors = run_debugfs(image, commands, write=True)
    assert errors == []


# --- reading it back -----------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    type: str
    mode: int
    uid: int
    gid: int
    nlink: int
    flags: int
    digest: str
    inode: int


def seen_ffs(image: Path, paths: list[str]) -> dict[str, Seen]:
    wanted = {p.encode() for p in paths}
    found = {}
    with FfsImage(image) as reader:
        for entry in reader.entries():
            if entry.path in wanted:
                data = reader.read(entry) if entry.type == "file" else b""
                found[entry.path.decode()] = Seen(
                    entry.type, entry.mode, entry.uid, entry.gid, entry.nlink, entry.flags,
                    hashlib.sha256(data).hexdigest(), entry.inode,
                )  # fmt: skip
    return found


EXT2_TYPES = {"regular": "file", "directory": "dir", "FIFO": "fifo"}


def seen_ext2fs(image: Path, paths: list[str]) -> dict[str, Seen]:
    stats, _ = run_debugfs(image, [f"stat /{p}" for p in paths])
    files = [p for p in paths if "Type: regular" in stats.get(f"stat /{p}", "")]
    with tempfile.TemporaryDirectory() as tmp:  # dumped, not cat: the content is bytes
        run_debugfs(image, [f"dump /{p} {tmp}/{i}" for i, p in enumerate(files)])
        contents = {p: Path(tmp, str(i)).read_bytes() for i, p in enumerate(files)}
    found = {}
    for path in paths:
        text = stats.get(f"stat /{path}", "")
        head = re.search(
            r"Inode:\s+(\d+)\s+Type:\s+(\S+)\s+Mode:\s+(\d+)\s+Flags:\s+(0x[0-9a-f]+)", text
        )
        if head is None:
            continue
        owner = re.search(r"User:\s+(\d+)\s+Group:\s+(\d+)", text)
        links = re.search(r"Links:\s+(\d+)", text)
        data = contents.get(path, b"")
        found[path] = Seen(
            EXT2_TYPES.get(head[2], head[2]), int(head[3], 8) & 0o7777, int(owner[1]),
            int(owner[2]), int(links[1]), int(head[4], 16), hashlib.sha256(data).hexdigest(),
            int(head[1]),
        )  # fmt: skip
    return found


def expected(day: FirstDay) -> dict[str, tuple]:
    """What each entry the domU wrote must be: type, mode, owner, link count, flags, digest."""
    links = day.links
    want = {}
    for path, node in day.nodes.items():
        first = day.nodes[node.same] if node.same else node
        digest = hashlib.sha256(first.data).hexdigest()
        nlink = links.get(path, 0)
        want[path] = (first.type, first.mode, first.uid, first.gid, nlink, first.flags, digest)
    return want


def observed(seen: dict[str, Seen]) -> dict[str, tuple]:
    return {
        p: (s.type, s.mode, s.uid, s.gid, s.nlink if s.type != "dir" else 0, s.flags, s.digest)
        for p, s in seen.items()
    }


def link_groups(seen: dict[str, Seen]) -> set[frozenset[str]]:
    by_inode: dict[int, set[str]] = {}
    for path, entry in seen.items():
        if entry.type != "dir":
            by_inode.setdefault(entry.inode, set()).add(path)
    return {frozenset(paths) for paths in by_inode.values() if len(paths) > 1}


def wanted_groups(day: FirstDay) -> set[frozenset[str]]:
    groups: dict[str, set[str]] = {}
    for path, node in day.nodes.items():
        if node.type != "dir":
            groups.setdefault(node.same or path, set()).add(path)
    return {frozenset(paths) for paths in groups.values() if len(paths) > 1}


def read_back(image: Path, fs: str, paths: list[str]) -> dict[str, Seen]:
    return (seen_ffs if fs == "ffs" else seen_ext2fs)(image, paths)


def text_of(image: Path, fs: str, path: str) -> str:
    if fs == "ffs":
        with FfsImage(image) as reader:
            return reader.read(reader.entry(path.encode())).decode()
    outputs, _ = run_debugfs(image, [f"cat /{path}"])
    return outputs[f"cat /{path}"]


def room(image: Path, fs: str) -> dict[str, tuple[int, int]]:
    """Free and total inodes, and free and total blocks (in fragments on FFS), as the
    superblock counts them."""
    if fs == "ffs":
        with FfsImage(image) as reader:
            sb, params = reader.sb, reader.params
            end = "<" if params.order == "little" else ">"
            # fs_old_cstotal: cs_ndir, cs_nbfree, cs_nifree, cs_nffree
            _, nbfree, nifree, nffree = struct.unpack_from(end + "4i", sb.raw, FS_OLD_CSTOTAL_AT)
            (dsize,) = struct.unpack_from(end + "i", sb.raw, FS_OLD_DSIZE_AT)
            return {
                "inodes": (nifree, params.ncg * params.ipg),
                "blocks": (nbfree * sb.fs_frag + nffree, dsize),
            }
    out, _ = run_debugfs(image, ["stats"])
    text = out["stats"]

    def number(name: str) -> int:
        return int(re.search(rf"^{name}:\s+(\d+)", text, re.M)[1])

    return {
        "inodes": (number("Free inodes"), number("Inode count")),
        "blocks": (number("Free blocks"), number("Block count")),
    }


# --- the day ------------------------------------------------------------------------------


@dataclass
class Converged:
    site: Site
    days: dict[str, FirstDay]  # domU -> what its domU wrote
    written: dict[str, dict[str, Seen]]  # domU -> what the day left, read before the build
    build: object  # the `./domus build` run

    def image(self, name: str) -> Path:
        return self.site.image(name, "local.img")


@pytest.fixture(scope="module")
def converged(tmp_path_factory) -> Converged:
    site = Site(tmp_path_factory.mktemp("first-day"))
    site.build()
    days, written = {}, {}
    for name, fs in LOCALS.items():
        image = site.image(name, "local.img")
        # a domU writes until its inode table is full: a day cut short leaves the converge
        # a few (test_a_whole_day_fits says so)
        free, _ = room(image, fs)["inodes"]
        days[name] = first_day(fs, min(FULL_DAY, free - DAY_INODES - CONVERGE_INODES))
        work = tmp_path_factory.mktemp(f"{name}-day")
        (write_ffs if fs == "ffs" else write_ext2fs)(image, days[name], work)
        assert_netbsd_accepts(image, fs)
        written[name] = read_back(image, fs, sorted(days[name].nodes))
    templates = site.directory / "templates" / "local" / "etc"
    templates.mkdir(parents=True)
    (templates / "motd").write_text(MOTD)
    site.data["templates"] = "templates"
    site.save()
    build = domus("build", f"config={site.path}", cwd=site.directory)
    return Converged(site, days, written, build)


@pytest.mark.parametrize("name", sorted(LOCALS))
def test_a_whole_day_fits(converged, name):
    """Several hundred files and the rest of a day. FFS local images are built with a tight
    inode table today (one inode per 256 KiB): their day is cut short."""
    bulk = {path for path, _ in bulk_files()} & set(converged.days[name].nodes)
    assert len(bulk) == FULL_DAY, f"{len(bulk)} files of {FULL_DAY} fit"


@pytest.mark.parametrize("name", sorted(LOCALS))
def test_the_day_is_written_as_the_domu_left_it(converged, name):
    """Before the converge: what the test wrote is what it meant to write."""
    day = converged.days[name]
    seen = converged.written[name]
    assert observed(seen) == expected(day)
    assert link_groups(seen) == wanted_groups(day)


def test_the_build_converges_every_local_image(converged):
    done = converged.build
    assert done.returncode == 0, done.stdout + done.stderr
    for name, fs in LOCALS.items():
        image = converged.image(name)
        assert text_of(image, fs, "etc/motd") == MOTD
        assert_netbsd_accepts(image, fs)


@pytest.mark.parametrize("name", sorted(LOCALS))
def test_every_file_the_domu_wrote_is_still_there(converged, name):
    """Content, owner, mode and flags of every entry; the immutable files among them."""
    fs, day = LOCALS[name], converged.days[name]
    seen = read_back(converged.image(name), fs, sorted(day.nodes))
    assert sorted(seen) == sorted(day.nodes)
    want, got = expected(day), observed(seen)
    strip = {p: (w[0], w[1], w[2], w[3], w[5], w[6]) for p, w in want.items()}
    assert {p: (g[0], g[1], g[2], g[3], g[5], g[6]) for p, g in got.items()} == strip


@pytest.mark.parametrize("name", sorted(LOCALS))
def test_the_package_user_is_still_there(converged, name):
    fs = LOCALS[name]
    image = converged.image(name)
    for path, line in converged.days[name].appended.items():
        assert text_of(image, fs, path).endswith(line.decode())
    assert read_back(image, fs, ["etc/master.passwd"])["etc/master.passwd"].mode == 0o600


@pytest.mark.parametrize("name", sorted(LOCALS))
def test_hard_links_and_the_fifo_keep_their_link_counts(converged, name):
    """The rewrite converge of FFS splits a hard-linked FIFO into two FIFOs today."""
    fs, day = LOCALS[name], converged.days[name]
    seen = read_back(converged.image(name), fs, sorted(day.nodes))
    assert seen["var/run/hello.fifo"].type == "fifo"
    assert {p: s.nlink for p, s in seen.items() if s.type != "dir"} == day.links
    assert link_groups(seen) == wanted_groups(day)


@pytest.mark.parametrize("name", sorted(LOCALS))
def test_room_is_left_to_live_in(converged, name):
    """At least 10 % of the inodes and of the blocks free after the first day and the
    converge. FFS local images are built with a tight inode table today."""
    free = room(converged.image(name), LOCALS[name])
    for what, (left, total) in free.items():
        assert left >= ROOM * total, f"{left} of {total} {what} free"
