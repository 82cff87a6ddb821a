"""Converging an FFS image without mounting it (the default; Linux and NetBSD without root
cannot mount it to write it anyway): the image is read whole and written anew through
makefs, so no host kernel parses the domU's disk.

1. Read every entry with domus's own FFSv1 reader (tasks/images/ffs_reader.py), refusing
   first what it cannot carry over exactly (not clean, FFSv2, a log, soft dependencies,
   ACLs or extended attributes, sockets, a directory with two names).
2. Stage each entry in a private directory beside the image (0700, removed on every path;
   a killed run's by the next command): files with their content, hard links as hard links,
   symbolic links; and an mtree spec with every entry's owner, mode, mtime, link target
   and device number. makefs makes a lone device node or FIFO from the spec (so no root),
   but keeps names as one inode only when they are linked in the staged tree (its spec
   reader ignores nlink): a FIFO or device node with several names is staged with
   mknod(2) and linked, which for a device node needs root.
3. Make the managed changes in the staged tree exactly as a mount does: the old file's
   inode kept under NAME.domus-STAMP, the new one written beside it and renamed over it,
   backups beyond converge.keep_backups removed.
4. makefs a new image beside the old one with the old superblock's parameters (size,
   block and fragment size, inode density, minfree, optimization, byte order, FFSv1), or,
   where the site gives the image more room (tasks/converge/shape.py), at the new size
   with newfs's block, fragment and inode sizes for it; and write into its inodes what
   makefs does not set (di_flags, nanoseconds, atime).
5. Read it back and compare it with the old one entry by entry (path, type, owner, mode,
   flags, times, link target, device number, content hash, hard-link groups): only the
   managed files, their backups and the directories made for them may differ. Hold it to
   NetBSD's superblock and cylinder-group rules, fsync it, and rename it over the old one,
   which stays beside it as local-converge-STAMP.img (the newest converge.keep_images).

Not kept: inode numbers, ctime, generation numbers, the order of directory entries and
where the blocks lie. A kill at any step leaves the old image in place and in use.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import re
import stat
import struct
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from tasks.converge.debugfs import keep_owner
from tasks.converge.plan import (
    Change,
    FileState,
    backup_dir,
    backup_name,
    pruned_backups,
    stray_backups,
)
from tasks.converge.shape import Shape, has_density
from tasks.formats.fsck_rules import ffs_problems
from tasks.formats.mtree import encode
from tasks.images.ffs import inodes_per_group, makefs_argv, room_options
from tasks.images.ffs_reader import CHUNK, FfsEntry, FfsError, FfsImage, FfsParams
from tasks.images.guest_limits import MAX_FILE_SIZE, too_large
from tasks.images.plaintext import private_dir
from tasks.images.publish import fsync_dir, publishing
from tasks.images.sparse import punch_zeros
from tasks.images.working_copy import require_room
from tasks.recipes.templated import dir_mode
from tasks.run.errors import DomusError
from tasks.run.log import timed
from tasks.site.sizes import format_size
from tasks.tools import run

# what makefs cannot make from a staged tree and a spec
UNSUPPORTED_TYPES = ("socket", "unknown")
# the nodes staged (for their hard links) with mknod(2); the spec gives the device number
NODE_TYPES = {"fifo": stat.S_IFIFO, "char": stat.S_IFCHR, "block": stat.S_IFBLK}
# where a rewrite stages per file: a block for each file and directory beyond its bytes
STAGING_SLACK = 4096
ORDERS = {"little": "le", "big": "be"}


def kept_image_name(image: Path, stamp: str) -> Path:
    return image.with_name(f"{image.stem}-converge-{stamp}{image.suffix}")


def kept_images(image: Path) -> list[Path]:
    """The old images earlier rewrites kept beside `image`, oldest first."""
    pattern = re.compile(re.escape(image.stem) + r"-converge-\d{8}T\d{6}" + re.escape(image.suffix))
    return sorted(p for p in image.parent.iterdir() if pattern.fullmatch(p.name))


@dataclass(frozen=True)
class Signature:
    """What the verification compares of one entry."""

    type: str
    mode: int
    uid: int
    gid: int
    flags: int
    mtime: tuple[int, int] | None  # None: a fresh entry, any time
    atime: tuple[int, int] | None
    link: bytes | None
    rdev: int | None
    size: int
    digest: bytes | None  # sha256 of a file's content


def signature(entry: FfsEntry, digest: bytes | None, fresh: bool = False) -> Signature:
    return Signature(
        entry.type,
        entry.mode,
        entry.uid,
        entry.gid,
        entry.flags,
        None if fresh else (entry.mtime, entry.mtime_ns),
        None if fresh else (entry.atime, entry.atime_ns),
        entry.link,
        entry.rdev,
        0 if entry.type == "dir" else entry.size,  # makefs lays directories out anew
        digest,
    )


def refusal_hint(reason: str) -> str:
    first = (
        "boot its domU and shut it down cleanly (or run `fsck_ffs -p` on it on a NetBSD "
        "host), then run again; or "
        if "not marked clean" in reason
        else ""
    )
    return (
        f"{first}converge it as root on the NetBSD dom0 with converge.mount: true, where a "
        "vnd(4) mount writes every FFS feature; or `./domus reprovision` it (the old image "
        "is kept as a dated backup); or undo the change"
    )


def rewrite_problem(reader: FfsImage) -> str | None:
    """Why the image cannot be rewritten exactly, from its superblock and its entries'
    metadata (no content is read); None when it can."""
    reason = reader.refusal()
    if reason is not None:
        return reason
    if reader.params.volname:  # domus's images have none; makefs cannot write one
        return f"it has a volume label ({reader.params.volname!r}), which makefs cannot write"
    directories: set[int] = set()
    seen: set[bytes] = set()
    for entry in reader.entries():
        shown = "/" + entry.path.decode(errors="backslashreplace")
        if entry.path in seen:  # staged, the second would be made through the first
            return f"{shown} is named twice in its directory, which no kernel writes"
        seen.add(entry.path)
        if entry.type in UNSUPPORTED_TYPES:
            return f"{shown} is a {entry.type}, which makefs cannot make"
        if entry.type in ("char", "block") and entry.nlink > 1 and os.geteuid() != 0:
            return (
                f"the device node {shown} has {entry.nlink} names, which makefs keeps as one "
                "inode only when they are staged as a device node, made by root"
            )
        if entry.type == "dir" and entry.inode in directories:
            return f"the directory {shown} has a second name, which makefs cannot make"
        if entry.type == "dir":
            directories.add(entry.inode)
    return None


def check_rewritable(image: Path, reader: FfsImage) -> None:
    """A DomusError naming the image and what would work, before anything is written."""
    try:
        reason = rewrite_problem(reader)
    except FfsError as error:
        reason = str(error)
    if reason is not None:
        raise DomusError(
            f"{image} cannot be rewritten exactly without mounting it: {reason}",
            hint=refusal_hint(reason),
        )


class RewriteFiles:
    """The ImageFiles of tasks/converge/local.py for an FFS image rewritten through makefs.

    `reader` reads the image as it is (the image itself, or a sealed image's plaintext);
    `private` is the private directory to stage in (None: one is made beside the image);
    `seal` writes the new plain image, encrypted, to the path it is given (None: the new
    image is itself the image); `shape`: the new image's size and inode density (None:
    the old image's shape, kept exactly)."""

    max_file_size = MAX_FILE_SIZE  # converge.max_file_size: a larger file is not read

    def __init__(
        self,
        image: Path,
        reader: FfsImage,
        *,
        keep_images: int,
        private: Path | None = None,
        seal: Callable[[Path, Path], None] | None = None,
        shape: Shape | None = None,
    ) -> None:
        self.image, self.reader, self.keep_images = image, reader, keep_images
        self.private, self.seal, self.shape = private, seal, shape
        self.pruned: list[str] = []
        self.directory_flags: dict[str, int] = {}
        self.kept: Path | None = None  # the old image kept beside the new one
        self.pruned_images: list[Path] = []

    @property
    def kept_note(self) -> str:
        parts = []
        if self.kept is not None:
            parts.append(f"kept the old image as {self.kept.name}")
        if self.pruned_images:
            parts.append("removed " + ", ".join(p.name for p in self.pruned_images))
        return "; ".join(parts)

    # --- reading -------------------------------------------------------------------

    def _lookup(self, path: str) -> FfsEntry | None:
        try:
            return self.reader.entry(path.encode(errors="surrogateescape"))
        except KeyError:
            return None

    def current(self, path: str) -> FileState | None:
        try:
            return self._current(path)
        except FfsError as error:
            raise DomusError(f"{self.image}: {error}") from None

    def _current(self, path: str) -> FileState | None:
        parts = path.split("/")
        for depth in range(len(parts)):
            above = self._lookup("/".join(parts[:depth]))
            if above is None:
                return None
            if above.type == "dir":
                self.directory_flags["/".join(parts[:depth])] = above.flags
            else:
                raise DomusError(
                    f"/{'/'.join(parts[:depth])} in the image is a {above.type}, not a "
                    "directory; domus does not follow links there",
                    hint="make it a directory again, or reprovision",
                )
        entry = self._lookup(path)
        if entry is None:
            return None
        if entry.type != "file":
            raise DomusError(
                f"/{path} in the image is a {entry.type}, not a regular file; domus "
                "manages it and does not replace it",
                hint="make it a regular file again, or reprovision",
            )
        if entry.size > self.max_file_size:
            raise too_large(str(self.image), path, entry.size, self.max_file_size)
        return FileState(self.reader.read(entry), entry.mode, entry.uid, entry.gid, entry.flags)

    def read_all(self, paths: Sequence[str]) -> dict[str, FileState | None]:
        return {path: self.current(path) for path in paths}

    def missing_dirs(self, paths: Sequence[str]) -> set[str]:
        missing = set()
        for path in paths:
            parts = path.split("/")
            for depth in range(len(parts) + 1):
                above = "/".join(parts[:depth])
                entry = self._lookup(above)
                if entry is None:
                    missing.add(path)
                    break
                if entry.type != "dir":  # the domU's link or file, and what lies past it
                    break
                self.directory_flags[above] = entry.flags
        return missing

    def room(self) -> tuple[int, int]:
        return self.reader.free_bytes(), self.reader.params.bsize

    # --- converging ----------------------------------------------------------------

    def apply(self, changes: Sequence[Change], stamp: str, keep: int) -> list[str]:
        """Stage, change, rebuild, verify, publish; returns the backups' paths."""
        check_rewritable(self.image, self.reader)
        entries = list(self.reader.entries())
        params = self.reader.params
        # a sparse file is staged with its holes: it costs the blocks it holds
        staged = sum(
            min(e.size, e.blocks * 512) + STAGING_SLACK
            for e in entries
            if e.type in ("file", "dir")
        )
        changed = sum(len(c.new.data) + STAGING_SLACK for c in changes if c.new is not None)
        # the staged tree and the new image (and, sealed, its encrypted copy: counted by
        # the caller with the plaintext)
        new_size = self.shape.size if self.shape else self.image.stat().st_size
        need = staged + changed + new_size
        require_room(self.image.parent, need, f"rewriting {self.image} to converge it")
        with ExitStack() as stack:
            private = self.private or stack.enter_context(private_dir(self.image))
            staging = private / "tree"
            staging.mkdir(mode=0o700)
            with timed(f"{self.image.name}: stage"):
                try:
                    tree = Staged.of(self.reader, entries, staging)
                except FfsError as error:
                    raise DomusError(
                        f"{self.image} cannot be rewritten: {error}; nothing was changed",
                        hint=refusal_hint(str(error)),
                    ) from None
            backups = tree.apply(changes, stamp, keep)
            self.pruned = tree.pruned
            spec = private / "spec"
            spec.write_text(tree.spec())
            if self.seal is None:
                with publishing(self.image) as partial:
                    self._build(tree, params, spec, staging, partial)
                    keep_owner(self.image, partial)
                    self._keep_old(stamp)
            else:
                plain = private / "new.img"
                self._build(tree, params, spec, staging, plain)
                with publishing(self.image) as partial:
                    self.seal(plain, partial)
                    keep_owner(self.image, partial)
                    self._keep_old(stamp)
            self._prune_images()
        return backups

    def _build(
        self, tree: Staged, params: FfsParams, spec: Path, staging: Path, dest: Path
    ) -> None:
        if self.shape is not None:
            self._make_reshaped(params, self.shape, spec, staging, dest)
        else:
            self._make_same_shape(params, spec, staging, dest)
        with timed(f"{self.image.name}: inode fields"):
            write_inode_fields(dest, tree.expected_entries())
        with timed(f"{self.image.name}: verify"):
            problems = tree.verify(dest)
        if problems:
            raise DomusError(
                f"the rewritten {self.image} differs from the old one beyond the managed "
                f"files, so it was not used; nothing was changed: {'; '.join(problems[:5])}"
                + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""),
            )
        if self.seal is None:
            with timed(f"{self.image.name}: punch zeros"):
                punch_zeros(dest)

    def _make_reshaped(
        self, params: FfsParams, shape: Shape, spec: Path, staging: Path, dest: Path
    ) -> None:
        """makefs at the new size with newfs's layout for it and the asked density; the
        tuning a tunefs may have changed (minfree, optimization, ...) is kept."""
        assert shape.density is not None
        options = [
            *room_options(shape.size, shape.density),
            f"minfree={params.minfree}",
            f"optimization={params.optimization}",
            f"avgfilesize={params.avgfilesize}",
            f"avgfpdir={params.avgfpdir}",
        ]
        dest.unlink(missing_ok=True)
        try:
            with timed(f"{self.image.name}: makefs"):
                run(makefs_argv(spec, shape.size, dest, staging, ORDERS[params.order], options),
                    dest.name, guest=True)  # fmt: skip
        except DomusError as error:
            raise DomusError(
                f"{self.image} cannot be made anew at {format_size(shape.size)}: makefs "
                f"failed ({error.message.strip()[-300:]}); nothing was changed",
                hint="raise local.size, or raise local.density (fewer inodes)",
            ) from None
        with FfsImage(dest) as built:
            got = built.params
        if got.size != shape.size or not has_density(got, shape.density):
            raise DomusError(
                f"{self.image} was not made anew as asked: makefs made {format_size(got.size)} "
                f"with {got.ncg} groups of {got.ipg} inodes, not one inode per "
                f"{shape.density} bytes of {format_size(shape.size)}; nothing was changed",
                hint=refusal_hint(""),
            )

    def _make_same_shape(self, params: FfsParams, spec: Path, staging: Path, dest: Path) -> None:
        size = self.image.stat().st_size  # a sealed image is as large as its plaintext
        failures = []
        for fragments in inode_spacings(params):
            try:
                with timed(f"{self.image.name}: makefs"):
                    makefs(params, fragments, size, spec, staging, dest)
            except DomusError as error:
                said = error.message.strip()[-300:]
                full = re.search(r"too small|exceeds|larger than|No space", said, re.I)
                raise DomusError(
                    f"{self.image} cannot be rewritten"
                    + (" in its own size" if full else "")
                    + f": makefs failed ({said}); nothing was changed",
                    hint=refusal_hint("")
                    + ("; or free space inside the image and converge again" if full else ""),
                ) from None
            with FfsImage(dest) as built:
                got = built.params
            if same_shape(got, params):
                break
            failures.append(f"{got.ncg} groups of {got.ipg} inodes and {got.fpg} fragments")
        else:
            raise DomusError(
                f"{self.image} cannot be rewritten with the same shape: it has {params.ncg} "
                f"cylinder groups of {params.ipg} inodes and {params.fpg} fragments, makefs "
                f"made {'; '.join(failures)}; nothing was changed",
                hint=refusal_hint(""),
            )

    def _keep_old(self, stamp: str) -> None:
        """A second name for the old image, made before the new one is renamed over it."""
        if self.keep_images <= 0:
            return
        kept = kept_image_name(self.image, stamp)
        kept.unlink(missing_ok=True)
        os.link(self.image, kept)
        self.kept = kept

    def _prune_images(self) -> None:
        old = kept_images(self.image)
        for path in old[: max(len(old) - self.keep_images, 0)]:
            path.unlink(missing_ok=True)
            self.pruned_images.append(path)
        if self.pruned_images:
            fsync_dir(self.image.parent)


# --- the shape of the new image -----------------------------------------------------


def same_shape(got: FfsParams, want: FfsParams) -> bool:
    fields = ("order", "size", "bsize", "fsize", "ncg", "ipg", "fpg", "minfree", "optim")
    return all(getattr(got, f) == getattr(want, f) for f in fields) and (
        got.volname == want.volname
    )


def inode_spacings(params: FfsParams) -> list[int]:
    """Fragments per inode that give the image's inodes per group, likeliest first.

    makefs, as newfs, makes ipg = roundup(howmany(fpg, fragsperinode), INOPB), with
    fragsperinode = density / fsize: so a density that yields the old ipg is found from
    the old fpg, and checked on the image makefs makes (its fpg depends on it too)."""
    guess = max(params.fpg // max(params.ipg, 1), 1)
    candidates = [
        f
        for f in sorted(range(max(guess - 3, 1), guess + 4), key=lambda f: abs(f - guess))
        if inodes_per_group(params.fpg, f, params.bsize) == params.ipg
    ]
    return candidates[:3] or [guess]


def makefs(
    params: FfsParams, fragments: int, size: int, spec: Path, staging: Path, dest: Path
) -> None:
    options = [
        f"bsize={params.bsize}",
        f"fsize={params.fsize}",
        f"density={fragments * params.fsize}",
        f"minfree={params.minfree}",
        f"optimization={params.optimization}",
        f"maxbpf={params.maxbpg}",
        f"avgfilesize={params.avgfilesize}",
        f"avgfpdir={params.avgfpdir}",
    ]
    dest.unlink(missing_ok=True)
    argv = makefs_argv(spec, size, dest, staging, ORDERS[params.order], options)
    run(argv, dest.name, guest=True)


# --- the staged tree ----------------------------------------------------------------


@dataclass
class Planned:
    """An entry of the new image as the rewrite means it to be."""

    entry: FfsEntry  # the metadata (for a fresh entry, what the change says)
    digest: bytes | None
    ident: tuple[str, int | bytes]  # entries with one ident are one inode (hard links)
    fresh: bool = False  # a file or directory the converge made: any time


class Staged:
    """The old image's entries staged as host files, with what each must become."""

    def __init__(self, top: Path) -> None:
        self.top = top
        self.planned: dict[bytes, Planned] = {}
        self.pruned: list[str] = []

    def host(self, path: bytes) -> bytes:
        return os.fsencode(self.top) + (b"/" + path if path else b"")

    @classmethod
    def of(cls, reader: FfsImage, entries: Iterable[FfsEntry], top: Path) -> Staged:
        tree = cls(top)
        first: dict[int, bytes] = {}  # inode -> the host path staged for it
        digests: dict[int, bytes] = {}
        for entry in entries:  # check_rewritable() refused what makefs cannot make
            host = tree.host(entry.path)
            digest = None
            if entry.type == "dir":
                if entry.path:
                    os.mkdir(host, 0o700)
            elif entry.inode in first:  # makefs makes one inode of names linked here
                os.link(first[entry.inode], host, follow_symlinks=False)
                digest = digests.get(entry.inode)
            elif entry.type == "file":
                digest = _write_sparse(host, reader, entry)
                digests[entry.inode] = digest
            elif entry.type == "link":
                os.symlink(entry.link or b"", host)
            elif entry.nlink > 1:  # a lone FIFO or device node is made from the spec alone
                os.mknod(host, NODE_TYPES[entry.type] | 0o600)
            first.setdefault(entry.inode, host)
            tree.planned[entry.path] = Planned(entry, digest, ("old", entry.inode))
        return tree

    def apply(self, changes: Sequence[Change], stamp: str, keep: int) -> list[str]:
        """The changes as a mount makes them; returns the backups' paths."""
        now = time.time_ns()
        backups = []
        for index, change in enumerate(changes):
            path = change.path.encode(errors="surrogateescape")
            parent, _, name = path.rpartition(b"/")
            self._make_dirs(parent, now)
            if change.directory:
                assert change.new is not None
                self._make_dir(path, change.new, now)
                continue
            kept_in = backup_dir(parent.decode(errors="surrogateescape")).encode(
                errors="surrogateescape"
            )
            strays = [] if kept_in == parent else self._strays(parent, name)
            if change.old is not None or strays:
                self._make_dirs(kept_in, now)
            for stray in strays:  # left beside the file by an earlier converge: would run
                self._move(_join(parent, stray), _join(kept_in, stray))
            names = set(os.listdir(self.host(kept_in))) if kept_in in self.planned else set()
            text_names = {n.decode(errors="surrogateescape") for n in names}
            if change.old is not None:
                backup = backup_name(name.decode(errors="surrogateescape"), stamp, text_names)
                backup_path = _join(kept_in, backup.encode(errors="surrogateescape"))
                os.link(self.host(path), self.host(backup_path), follow_symlinks=False)
                kept = self.planned[path]
                self.planned[backup_path] = replace(
                    kept, entry=replace(kept.entry, path=backup_path)
                )
                backups.append(backup_path.decode(errors="surrogateescape"))
                text_names.add(backup)
            if change.new is None:  # no longer managed: the backup is its only name
                os.unlink(self.host(path))
                del self.planned[path]
            else:
                self._write_new(path, index, change.new, now)
            text_name = name.decode(errors="surrogateescape")
            for old in pruned_backups(text_name, text_names, keep):
                old_path = _join(kept_in, old.encode(errors="surrogateescape"))
                os.unlink(self.host(old_path))
                del self.planned[old_path]
                self.pruned.append(old_path.decode(errors="surrogateescape"))
        return backups

    def _strays(self, parent: bytes, name: bytes) -> list[bytes]:
        """The backups of `name` an earlier converge kept in `parent` (regular files)."""
        files = {
            path.rpartition(b"/")[2].decode(errors="surrogateescape")
            for path, planned in self.planned.items()
            if path.rpartition(b"/")[0] == parent and planned.entry.type == "file"
        }
        text = name.decode(errors="surrogateescape")
        return [s.encode(errors="surrogateescape") for s in stray_backups(text, files)]

    def _move(self, path: bytes, to: bytes) -> None:
        os.rename(self.host(path), self.host(to))
        planned = self.planned.pop(path)
        self.planned[to] = replace(planned, entry=replace(planned.entry, path=to))

    def _write_new(self, path: bytes, index: int, new: FileState, now: int) -> None:
        # written outside the tree, where no name of the domU's can be in the way
        temporary = os.fsencode(self.top.parent / f"change-{index}")
        digest = _write(temporary, [new.data])
        os.rename(temporary, self.host(path))
        self.planned[path] = Planned(
            _fresh_entry(path, "file", new, now, len(new.data)), digest, ("new", path), fresh=True
        )

    def _make_dirs(self, parent: bytes, now: int) -> None:
        parts = [p for p in parent.split(b"/") if p]
        for depth in range(1, len(parts) + 1):
            path = b"/".join(parts[:depth])
            if path in self.planned:
                continue  # current() refused an ancestor that is not a directory
            mode = dir_mode(path.decode(errors="surrogateescape"))
            self._make_dir(path, FileState(b"", mode, 0, 0), now)

    def _make_dir(self, path: bytes, state: FileState, now: int) -> None:
        os.mkdir(self.host(path), 0o700)  # the spec gives its mode and owner
        self.planned[path] = Planned(
            _fresh_entry(path, "dir", state, now, 0), None, ("new", path), fresh=True
        )

    def expected_entries(self) -> dict[bytes, FfsEntry]:
        return {path: planned.entry for path, planned in self.planned.items()}

    def spec(self) -> str:
        return "#mtree v2.0\n" + "".join(spec_line(p.entry) + "\n" for p in self.planned.values())

    def verify(self, image: Path) -> list[str]:
        """Every difference between the new image and what it must be, as text."""
        problems: list[str] = []
        with FfsImage(image) as built:
            if built.refusal() is not None:
                problems.append(f"the new image: {built.refusal()}")
            found: dict[bytes, Signature] = {}
            inodes: dict[bytes, int] = {}
            digests: dict[int, bytes] = {}
            for entry in built.entries():
                digest = None
                if entry.type == "file":
                    if entry.inode not in digests:
                        digests[entry.inode] = _digest(built.chunks(entry))
                    digest = digests[entry.inode]
                planned = self.planned.get(entry.path)
                fresh = planned is not None and planned.fresh
                found[entry.path] = signature(entry, digest, fresh)
                inodes[entry.path] = entry.inode
        want = {path: signature(p.entry, p.digest, p.fresh) for path, p in self.planned.items()}
        for path in sorted(set(want) | set(found)):
            shown = "/" + path.decode(errors="backslashreplace")
            if path not in found:
                problems.append(f"{shown} is missing")
            elif path not in want:
                problems.append(f"{shown} appeared")
            elif found[path] != want[path]:
                problems.append(f"{shown} differs: {_fields(want[path], found[path])}")
        want_groups = _groups((p, planned.ident) for p, planned in self.planned.items())
        found_groups = _groups(inodes.items())
        for group in sorted(want_groups ^ found_groups, key=sorted):
            shown = ", ".join("/" + p.decode(errors="backslashreplace") for p in sorted(group))
            problems.append(
                f"the hard links differ: {shown} "
                + ("are no longer one inode" if group in want_groups else "became one inode")
            )
        with open(image, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            problems += [f"NetBSD would refuse it: {p}" for p in ffs_problems(data)]
        return problems


def _fields(want: Signature, got: Signature) -> str:
    return ", ".join(
        f"{name} {getattr(want, name)!r} -> {getattr(got, name)!r}"
        for name in Signature.__dataclass_fields__
        if getattr(want, name) != getattr(got, name)
    )


def _groups(pairs: Iterable[tuple[bytes, object]]) -> set[frozenset[bytes]]:
    by: dict[object, set[bytes]] = {}
    for path, ident in pairs:
        by.setdefault(ident, set()).add(path)
    return {frozenset(paths) for paths in by.values() if len(paths) > 1}


def _join(parent: bytes, name: bytes) -> bytes:
    return parent + b"/" + name if parent else name


def _digest(chunks: Iterable[bytes]) -> bytes:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.digest()


def _write(host: bytes, chunks: Iterable[bytes]) -> bytes:
    digest = hashlib.sha256()
    fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        for chunk in chunks:
            digest.update(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    return digest.digest()


def _write_sparse(host: bytes, reader: FfsImage, entry: FfsEntry) -> bytes:
    """The file staged with its holes: only the blocks the image holds are written, so a
    file the guest made sparse costs its blocks, not the size it claims. The digest is
    of its whole content, holes read as zeros."""
    digest = hashlib.sha256()
    hashed = 0

    def zeros_to(offset: int) -> None:
        nonlocal hashed
        while hashed < offset:
            step = min(offset - hashed, CHUNK)
            digest.update(bytes(step))
            hashed += step

    fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        for offset, at, length in reader.file_extents(entry):
            zeros_to(offset)
            for step in range(0, length, CHUNK):
                data = reader.read_at(at + step, min(CHUNK, length - step))
                view = memoryview(data)
                done = 0
                while done < len(view):
                    done += os.pwrite(fd, view[done:], offset + step + done)
                digest.update(data)
                hashed += len(data)
        zeros_to(entry.size)
        os.ftruncate(fd, entry.size)
    finally:
        os.close(fd)
    return digest.digest()


def _fresh_entry(path: bytes, kind: str, state: FileState, now: int, size: int) -> FfsEntry:
    seconds, nanoseconds = divmod(now, 10**9)
    return FfsEntry(
        path=path, type=kind, mode=state.mode, uid=state.uid, gid=state.gid, size=size,
        mtime=seconds, mtime_ns=nanoseconds, atime=seconds, atime_ns=nanoseconds,
        ctime=seconds, ctime_ns=nanoseconds, nlink=1, inode=0, generation=0, flags=0,
        blocks=0,
    )  # fmt: skip


def spec_line(entry: FfsEntry) -> str:
    name = "./" + encode(entry.path.decode(errors="surrogateescape")) if entry.path else "."
    words = [
        name,
        f"type={entry.type}",
        f"uid={entry.uid}",
        f"gid={entry.gid}",
        f"mode={entry.mode:04o}",
        f"time={entry.mtime}.{entry.mtime_ns:09d}",
    ]
    if entry.type == "link":
        words.append(f"link={encode((entry.link or b'').decode(errors='surrogateescape'))}")
    if entry.device is not None:
        words.append(f"device=netbsd,{entry.device[0]},{entry.device[1]}")
    return " ".join(words)


# struct ufs1_dinode: di_atime, di_atimensec (16), di_mtime, di_mtimensec (24), di_flags (100)
_TIMES_AT, _FLAGS_AT = 16, 100


def write_inode_fields(image: Path, entries: dict[bytes, FfsEntry]) -> None:
    """What makefs does not set from a spec, written into the new image's inodes: di_flags
    (makefs on Linux has no st_flags), the nanoseconds of mtime, and atime. UFS1 inodes
    carry no checksum, so these are plain fields of the dinode."""
    with FfsImage(image) as built:
        end = "<" if built.params.order == "little" else ">"
        writes = []
        for entry in built.entries():
            want = entries.get(entry.path)
            if want is None:
                continue
            at = built.inode_offset(entry.inode)
            times = struct.pack(f"{end}iiii", want.atime, want.atime_ns, want.mtime, want.mtime_ns)
            writes.append((at + _TIMES_AT, times))
            writes.append((at + _FLAGS_AT, struct.pack(f"{end}I", want.flags)))
    with open(image, "r+b") as f:
        for offset, data in sorted(writes):
            f.seek(offset)
            f.write(data)


@contextmanager
def opened(image: Path, keep_images: int, shape: Shape | None = None) -> Iterator[RewriteFiles]:
    with FfsImage(image) as reader:
        check_rewritable(image, reader)
        yield RewriteFiles(image, reader, keep_images=keep_images, shape=shape)
