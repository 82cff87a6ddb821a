"""A file system tree to put in an image, built without root.

File contents live in a staging directory; owners, groups, modes and types live in the
manifest, because an unprivileged build cannot chown. The image writers turn the manifest
into an mtree spec (makefs) or debugfs commands (ext2fs), as NetBSD's `build.sh -U` does
with its METALOG.

Staged files are often hard links into a source tree or a cache, so a file is never
written in place: it is unlinked and created anew, and the source is never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from tasks.run.errors import DomusError
from tasks.run.progress import Progress, on_terminal

ROOT = "."


@dataclass(frozen=True)
class Entry:
    """Metadata of one path in the image; the content is the staged file of the same path."""

    type: str  # "file", "dir", "link", or one of SPECIAL
    mode: int  # permission bits, 0o7777
    uid: int = 0
    gid: int = 0
    link: str | None = None  # symlink target
    device: tuple[int, int] | None = None  # major and minor of a char or block device


# Device nodes and FIFOs: nothing is staged for them (making one on the host needs root);
# the image writers create them from the manifest.
SPECIAL = ("char", "block", "fifo")


def normalize(path: str) -> str:
    """'./etc//rc', '/etc/rc' and 'etc/rc' all name 'etc/rc'; the top is '.'."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise DomusError(f"path {path!r} leaves the tree")
    return "/".join(parts) or ROOT


def parent_of(path: str) -> str:
    return path.rpartition("/")[0] or ROOT


def blocked_by(entries: dict[str, Entry], path: str) -> str | None:
    """The first path above `path` that `entries` holds as something other than a directory
    (a symbolic link above all), or None: a write beneath it would go through the link,
    to wherever on the host it leads."""
    at = path.find("/")
    while at != -1:
        entry = entries.get(path[:at])
        if entry is not None and entry.type != "dir":
            return path[:at]
        at = path.find("/", at + 1)
    return None


def beneath_what(entries: dict[str, Entry], above: str) -> str:
    """'the symbolic link ./x', for a refusal naming what `blocked_by` found."""
    kind = entries[above].type
    return f"the {'symbolic link' if kind == 'link' else kind} ./{above}"


class Tree:
    """A staging directory and its manifest, edited by the recipes' steps."""

    def __init__(self, staging: Path) -> None:
        self.staging = staging
        self.entries: dict[str, Entry] = {}

    @classmethod
    def empty(cls, staging: Path, mode: int = 0o755) -> Tree:
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        tree = cls(staging)
        tree.entries[ROOT] = Entry("dir", mode)
        return tree

    @classmethod
    def stage(cls, source: Path, entries: dict[str, Entry], staging: Path) -> Tree:
        """A tree whose files are hard links to the same paths below `source`."""
        for path in entries:
            above = blocked_by(entries, path)
            if above is not None:
                raise DomusError(
                    f"cannot stage ./{path}: it lies beneath {beneath_what(entries, above)}; "
                    "nothing is created through a link"
                )
        tree = cls.empty(staging, entries[ROOT].mode)
        with Progress(f"staging {staging.name}", len(entries), unit="files") as progress:
            for done, (path, entry) in enumerate(sorted(entries.items()), 1):
                host = tree.host_path(path)
                if entry.type == "dir":
                    host.mkdir(exist_ok=True)
                elif entry.type == "link":
                    os.symlink(entry.link or "", host)
                elif entry.type not in SPECIAL:
                    link_or_copy(source / path, host)
                progress.update(done)
        tree.entries = dict(entries)
        return tree

    # -- reading -------------------------------------------------------------

    def host_path(self, path: str) -> Path:
        path = normalize(path)
        above = blocked_by(self.entries, path)
        if above is not None:  # every read and write of the staging goes through here
            raise DomusError(f"/{path} lies beneath {beneath_what(self.entries, above)}")
        return self.staging if path == ROOT else self.staging / path

    def __contains__(self, path: str) -> bool:
        return normalize(path) in self.entries

    def entry(self, path: str) -> Entry:
        try:
            return self.entries[normalize(path)]
        except KeyError:
            raise DomusError(f"/{normalize(path)} is not in the tree") from None

    def read_text(self, path: str) -> str:
        if self.entry(path).type != "file":
            raise DomusError(f"/{normalize(path)} is not a regular file")
        return self.host_path(path).read_text()

    def file_bytes(self) -> int:
        """The bytes of every regular file: what an image writer reads to copy the tree."""
        return sum(
            self.host_path(path).lstat().st_size
            for path, entry in self.entries.items()
            if entry.type == "file"
        )

    def walk(self, top: str = ROOT) -> Iterator[tuple[str, Entry]]:
        """Entries at and below `top`, parents before children."""
        top = normalize(top)
        prefix = "" if top == ROOT else top + "/"
        for path in sorted(self.entries):
            if top == ROOT or path == top or path.startswith(prefix):
                yield path, self.entries[path]

    # -- changing ------------------------------------------------------------

    def _require_parent(self, path: str) -> None:
        parent = parent_of(path)
        above = blocked_by(self.entries, path)
        if above is not None or self.entries.get(parent, Entry("file", 0)).type != "dir":
            raise DomusError(
                f"cannot create /{path}: /{above or parent} is not a directory in the tree"
            )

    def _clear(self, path: str) -> None:
        host = self.host_path(path)
        if host.is_symlink() or host.is_file():
            host.unlink()

    def mkdir(self, path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> None:
        path = normalize(path)
        current = self.entries.get(path)
        if current is not None and current.type != "dir":
            raise DomusError(f"cannot make directory /{path}: a {current.type} is there")
        self._require_parent(path)
        self.host_path(path).mkdir(exist_ok=True)
        self.entries[path] = Entry("dir", mode, uid, gid)

    def write_bytes(
        self, path: str, data: bytes, mode: int = 0o644, uid: int = 0, gid: int = 0
    ) -> None:
        path = normalize(path)
        self._require_parent(path)
        self._clear(path)
        self.host_path(path).write_bytes(data)
        self.entries[path] = Entry("file", mode, uid, gid)

    def write_text(self, path: str, text: str, **meta: int) -> None:
        self.write_bytes(path, text.encode(), **meta)

    def replace_text(self, path: str, text: str) -> None:
        """New content, same owner and mode."""
        old = self.entry(path)
        self.write_text(path, text, mode=old.mode, uid=old.uid, gid=old.gid)

    def add_file(self, path: str, source: Path, mode: int, uid: int = 0, gid: int = 0) -> None:
        """Stage `source` under `path` by hard link (or copy across file systems)."""
        path = normalize(path)
        self._require_parent(path)
        self._clear(path)
        link_or_copy(source, self.host_path(path))
        self.entries[path] = Entry("file", mode, uid, gid)

    def symlink(self, path: str, target: str, uid: int = 0, gid: int = 0) -> None:
        path = normalize(path)
        self._require_parent(path)
        self._clear(path)
        os.symlink(target, self.host_path(path))
        self.entries[path] = Entry("link", 0o755, uid, gid, link=target)

    def add_special(self, path: str, entry: Entry) -> None:
        """A device node or FIFO, made in the image only."""
        path = normalize(path)
        self._require_parent(path)
        self._clear(path)
        self.entries[path] = entry

    def hardlink(self, path: str, existing: str) -> None:
        """`path` becomes another name of the file `existing` (same inode in the image)."""
        path, existing = normalize(path), normalize(existing)
        if self.entry(existing).type != "file":
            raise DomusError(f"cannot hard-link /{path} to /{existing}: not a regular file")
        self._require_parent(path)
        self._clear(path)
        os.link(self.host_path(existing), self.host_path(path))
        self.entries[path] = self.entries[existing]

    def chmod(self, path: str, mode: int) -> None:
        path = normalize(path)
        self.entries[path] = replace(self.entry(path), mode=mode)

    def remove(self, path: str) -> None:
        """Remove a path and everything below it."""
        path = normalize(path)
        self.entry(path)
        host = self.host_path(path)
        for sub in [p for p, _ in self.walk(path)]:
            del self.entries[sub]
        if host.is_dir() and not host.is_symlink():
            shutil.rmtree(host)
        else:
            host.unlink(missing_ok=True)  # device nodes and FIFOs have nothing staged

    def copy_from(self, other: Tree, top: str) -> None:
        """Copy `top` and everything below it from `other` to the same path here."""
        for path, entry in other.walk(top):
            if path == ROOT:
                continue
            if entry.type == "dir":
                self.mkdir(path, entry.mode, entry.uid, entry.gid)
            elif entry.type == "link":
                self.symlink(path, entry.link or "", entry.uid, entry.gid)
            elif entry.type in SPECIAL:
                self.add_special(path, entry)
            else:
                self.add_file(path, other.host_path(path), entry.mode, entry.uid, entry.gid)

    # -- persistence ---------------------------------------------------------

    def save_manifest(self, path: Path) -> None:
        data = {p: asdict(e) for p, e in sorted(self.entries.items())}
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, separators=(",", ":")))
        tmp.replace(path)

    @classmethod
    def load(cls, staging: Path, manifest: Path) -> Tree:
        tree = cls(staging)
        data = json.loads(manifest.read_text())
        tree.entries = {
            p: Entry(**{**e, "device": tuple(e["device"]) if e.get("device") else None})
            for p, e in data.items()
        }
        return tree


def link_or_copy(source: Path, dest: Path) -> None:
    try:
        os.link(source, dest)
    except OSError:
        shutil.copyfile(source, dest)


def tree_bytes(tree: Tree) -> int | None:
    """What writing `tree` into an image reads, for its progress; None (not counted) when
    no progress is shown."""
    return tree.file_bytes() if on_terminal(sys.stderr) else None
