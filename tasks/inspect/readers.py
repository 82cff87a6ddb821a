"""Reading an image's entries and files without mounting it, whatever its file system.

FFS through domus's own reader (tasks/images/ffs_reader.py), straight from the image or,
when it is encrypted, through a decrypting file object over it: no plaintext is written.
ext2fs through debugfs, which needs a file: an encrypted one is decrypted into a private
copy (tasks/images/plaintext.py: 0700 directory, 0600 file) removed on every way out, and
the files debugfs dumps go to such a directory too.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

from tasks.converge.debugfs import absolute, quoted, run_debugfs, streamed
from tasks.images.guest_limits import MAX_FILE_SIZE
from tasks.images.plaintext import private_dir
from tasks.inspect.names import Located
from tasks.run.errors import DomusError
from tasks.run.log import note
from tasks.run.progress import Progress

if TYPE_CHECKING:
    from tasks.images.ffs_reader import FfsEntry


@dataclass(frozen=True)
class Entry:
    path: str  # inside the image, relative ("" is its top)
    type: str  # file, dir, link, char, block, fifo, socket
    mode: int  # permission bits with setuid, setgid and sticky
    uid: int
    gid: int
    size: int
    mtime: int  # seconds since the epoch
    link: str | None = None  # a symlink's target
    device: tuple[int, int] | None = None  # (major, minor) of a device node

    @property
    def name(self) -> str:
        return self.path.rpartition("/")[2] or "/"


class Reader(Protocol):
    def entry(self, path: str) -> Entry: ...

    def children(self, path: str) -> list[Entry]: ...

    def read(self, path: str) -> bytes: ...  # a file known to be small (its size is read)

    def chunks(self, path: str) -> Iterator[bytes]: ...  # any file, a bounded chunk at a time

    def walk(self) -> Iterator[Entry]: ...

    def digests(self, paths: Sequence[str]) -> dict[str, str]: ...


def missing(where: str, path: str) -> DomusError:
    return DomusError(
        f"{where}: /{path} is not there",
        hint=f"`./domus ls {where}:/{path.rpartition('/')[0]}` lists what is",
    )


# -- FFS --------------------------------------------------------------------------------


class FfsReader:
    def __init__(self, image: Path | BinaryIO, where: str) -> None:
        from tasks.images.ffs_reader import FfsError, FfsImage

        try:
            self.image = FfsImage(image)
        except FfsError as error:
            raise DomusError(str(error)) from None
        self.where = where
        self.walked: dict[str, FfsEntry] = {}  # what walk() saw, so a path is not looked up
        try:
            why = self.image.refusal()
        except FfsError as error:
            raise DomusError(str(error)) from None
        if why is not None:
            note(f"{where}: read as it is on disk, which may not be what its domU sees: {why}")

    def _ours(self, found: FfsEntry) -> Entry:
        return Entry(
            path=found.path.decode("utf-8", "surrogateescape"),
            type=found.type,
            mode=found.mode,
            uid=found.uid,
            gid=found.gid,
            size=found.size,
            mtime=found.mtime,
            link=found.link.decode("utf-8", "surrogateescape") if found.link is not None else None,
            device=found.device,
        )

    def _find(self, path: str) -> FfsEntry:
        if path in self.walked:
            return self.walked[path]
        try:
            return self.image.entry(path.encode("utf-8", "surrogateescape"))
        except KeyError:
            raise missing(self.where, path) from None

    def entry(self, path: str) -> Entry:
        return self._ours(self._find(path))

    def children(self, path: str) -> list[Entry]:
        top = self._find(path)
        if top.type != "dir":
            return [self._ours(top)]
        return [self._ours(found) for found in self.image.children(top)]

    def read(self, path: str) -> bytes:
        return self.image.read(self._find(path))

    def chunks(self, path: str) -> Iterator[bytes]:
        return self.image.chunks(self._find(path))

    def walk(self) -> Iterator[Entry]:
        for found in self.image.entries():
            entry = self._ours(found)
            self.walked[entry.path] = found
            yield entry

    def digests(self, paths: Sequence[str]) -> dict[str, str]:
        result = {}
        with Progress(f"reading {self.where}", len(paths), unit="files") as progress:
            for path in paths:
                digest = hashlib.sha256()
                for chunk in self.image.chunks(self._find(path)):
                    digest.update(chunk)
                result[path] = digest.hexdigest()
                progress.advance(1)
        return result

    def close(self) -> None:
        self.image.close()


# -- ext2fs -----------------------------------------------------------------------------

_STAT_TYPE = re.compile(r"Type:\s+(\S+)\s+Mode:\s+(\d+)")
_STAT_OWNER = re.compile(r"User:\s+(\d+)\s+Group:\s+(\d+)\s+Size:\s+(\d+)")
_STAT_MTIME = re.compile(r"^\s*mtime:\s+0x([0-9a-f]+)", re.M)
_STAT_LINK = re.compile(r'Fast link dest:\s+"(.*)"')
_STAT_DEVICE = re.compile(r"Device major/minor number:\s+(\d+):(\d+)")
DEBUGFS_TYPES = {
    "regular": "file",
    "directory": "dir",
    "symlink": "link",
    "character": "char",
    "block": "block",
    "FIFO": "fifo",
    "socket": "socket",
}
_LS_LINE = re.compile(r"^/(\d+)/(\d+)/(\d+)/(\d+)/(.*)/(\d*)/$")


class DebugfsReader:
    def __init__(self, image: Path, where: str) -> None:
        self.image, self.where = image, where
        self.sizes: dict[str, int] = {}  # what walk() saw: the files digests() streams

    def chunks(self, path: str) -> Iterator[bytes]:
        found = self.entry(path)
        if found.type != "file":
            raise DomusError(f"{self.where}: /{path} is a {found.type}, not a file")
        return streamed(self.image, path, self.where)

    def _debugfs(self, commands: Sequence[str]) -> dict[str, str]:
        outputs, errors = run_debugfs(self.image, commands)
        fatal = [e for e in errors if "File not found by ext2_lookup" not in e]
        if fatal:
            raise DomusError(f"{self.where}: debugfs cannot read it: {'; '.join(fatal)}")
        return outputs

    def _parse(self, path: str, text: str) -> Entry | None:
        kind = _STAT_TYPE.search(text)
        owner = _STAT_OWNER.search(text)
        if kind is None or owner is None:
            return None
        mtime = _STAT_MTIME.search(text)
        link = _STAT_LINK.search(text)
        device = _STAT_DEVICE.search(text)
        entry_type = DEBUGFS_TYPES.get(kind[1], kind[1])
        return Entry(
            path=path,
            type=entry_type,
            mode=int(kind[2], 8) & 0o7777,
            uid=int(owner[1]),
            gid=int(owner[2]),
            size=int(owner[3]),
            mtime=int(mtime[1], 16) if mtime else 0,
            # a slow symlink's target (60 bytes or more) is read from its block by _stats
            link=link[1] if link and entry_type == "link" else None,
            device=(int(device[1]), int(device[2])) if device else None,
        )

    def _stats(self, paths: Sequence[str]) -> dict[str, Entry | None]:
        outputs = self._debugfs([f"stat {absolute(p)}" for p in paths])
        found = {p: self._parse(p, outputs.get(f"stat {absolute(p)}", "")) for p in paths}
        slow = [
            p for p, e in found.items() if e is not None and e.type == "link" and e.link is None
        ]
        if slow:
            # debugfs dumps a slow symlink's block as it dumps a file's: one run for them all
            for path, target in self._dump(slow).items():
                found[path] = replace(found[path], link=target.decode("utf-8", "surrogateescape"))
        return found

    def entry(self, path: str) -> Entry:
        found = self._stats([path])[path]
        if found is None:
            raise missing(self.where, path)
        return found

    def _names(self, directories: Sequence[str]) -> dict[str, list[str]]:
        outputs = self._debugfs([f"ls -p {absolute(d)}" for d in directories])
        names: dict[str, list[str]] = {}
        for directory in directories:
            found = []
            for line in outputs.get(f"ls -p {absolute(directory)}", "").splitlines():
                match = _LS_LINE.match(line)
                if match and match[5] not in (".", "..") and match[1] != "0":
                    found.append(f"{directory}/{match[5]}" if directory else match[5])
            names[directory] = found
        return names

    def children(self, path: str) -> list[Entry]:
        self.entry(path)
        paths = self._names([path])[path]
        return [e for e in self._stats(paths).values() if e is not None]

    def read(self, path: str) -> bytes:
        found = self.entry(path)
        if found.type != "file":
            raise DomusError(f"{self.where}: /{path} is a {found.type}, not a file")
        return self._dump([path])[path]

    def _dump(self, paths: Sequence[str]) -> dict[str, bytes]:
        # an image's files stay in a private directory beside it (a decrypted one's, inside
        # its own), never in the system's temporary directory
        with private_dir(self.image) as tmp:
            self._debugfs(
                [f"dump {absolute(p)} {quoted(f'{tmp}/{i}')}" for i, p in enumerate(paths)]
            )
            return {p: Path(tmp, str(i)).read_bytes() for i, p in enumerate(paths)}

    def walk(self) -> Iterator[Entry]:
        level = [""]
        yield self.entry("")
        while level:
            names = self._names(level)
            below = [p for d in level for p in names[d]]
            entries = self._stats(below)
            level = []
            for path in below:
                found = entries[path]
                if found is None:
                    continue
                yield found
                self.sizes[path] = found.size
                if found.type == "dir":
                    level.append(path)

    def digests(self, paths: Sequence[str]) -> dict[str, str]:
        result = {}
        # a large file is streamed (debugfs dumps a sparse one whole); the others are
        # dumped, a batch of bounded size at a time
        large = [p for p in paths if self.sizes.get(p, MAX_FILE_SIZE + 1) > MAX_FILE_SIZE]
        small = [p for p in paths if p not in set(large)]
        with Progress(f"reading {self.where}", len(paths), unit="files") as progress:
            for start in range(0, len(small), 200):
                for path, data in self._dump(small[start : start + 200]).items():
                    result[path] = hashlib.sha256(data).hexdigest()
                progress.update(min(start + 200, len(small)))
            for path in large:
                digest = hashlib.sha256()
                for chunk in streamed(self.image, path, self.where):
                    digest.update(chunk)
                result[path] = digest.hexdigest()
                progress.advance(1)
        return result

    def close(self) -> None:
        pass


def wrong_key(located: Located, fs: str) -> DomusError:
    return DomusError(
        f"{located.image} does not decrypt to an {fs} file system with its key: "
        "wrong key, or not the image the key was made for",
        hint="check the key directory (keys:) and local.cipher",
    )


# -- opening one ------------------------------------------------------------------------


@contextmanager
def opened(located: Located) -> Iterator[Reader]:
    """A reader of the image `located` names; closed (and any plaintext removed) after."""
    if located.fs == "ffs":
        source: object = located.image
        if located.key is not None:
            from tasks.cgd.seekable import open_decrypted

            source = open_decrypted(located.image, *located.key)
        try:
            reader = FfsReader(source, located.name)
        except DomusError:
            if located.key is not None:
                raise wrong_key(located, "FFS") from None
            raise
        from tasks.images.ffs_reader import FfsError

        try:
            yield reader
        except FfsError as error:  # met in what was read after the superblock
            raise DomusError(f"{located.name}: {error}") from None
        finally:
            reader.close()
            if located.key is not None:
                source.close()  # type: ignore[attr-defined]
        return
    if located.key is None:
        yield DebugfsReader(located.image, located.name)
        return
    from tasks.cgd.stream import decrypt_file
    from tasks.formats.superblocks import detect_fs

    # debugfs reads a file: a private plaintext copy, removed whatever happens
    with private_dir(located.image) as private:
        plain = private / "plain.img"
        decrypt_file(located.key[0], located.image, plain, passphrase=located.key[1])
        if detect_fs(plain) != "ext2fs":
            raise wrong_key(located, "ext2fs")
        yield DebugfsReader(plain, located.name)
