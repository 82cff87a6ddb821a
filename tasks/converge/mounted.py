"""Reading and converging the managed files of a mounted image, whatever its file system.

The image belongs to a domU, so nothing in it is trusted: every path is walked one
directory at a time without following symbolic links (a link planted at /etc/fstab must not
lead a write out of the image into the dom0). A changed file is first linked to its backup
name, then replaced by a new file renamed over it: a kill at any moment leaves the old file
or the new one, and the backup keeps the old inode with its owner, mode and mtime.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tasks.converge.flags import from_ext2
from tasks.converge.plan import Change, FileState, backup_name, pruned_backups
from tasks.errors import DomusError
from tasks.images.guest_limits import MAX_FILE_SIZE, too_large
from tasks.recipes.templated import dir_mode

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
FS_IOC_GETFLAGS = 0x80086601  # Linux's _IOR('f', 1, long): an ext2 inode's flags


def _temporary(name: str) -> str:
    return f".{name}.domus-new"


def chflags(fd: int) -> int:
    """The file's chflags as NetBSD shows them: its own stat's st_flags on a BSD; on Linux,
    which mounts only ext2fs here, the ext2 inode's flags through FS_IOC_GETFLAGS."""
    st = os.fstat(fd)
    if hasattr(st, "st_flags"):
        return st.st_flags
    flags = bytearray(8)
    try:
        fcntl.ioctl(fd, FS_IOC_GETFLAGS, flags)
    except OSError:  # a file system without inode flags
        return 0
    return from_ext2(int.from_bytes(flags[:4], sys.byteorder))


class MountedFiles:
    max_file_size = MAX_FILE_SIZE  # converge.max_file_size: a larger file is not read

    def __init__(self, top: Path, image: Path | None = None) -> None:
        """`image`: the image mounted at `top`, to name in messages."""
        self.top, self.where = top, str(image or top)
        self.pruned: list[str] = []
        self.directory_flags: dict[str, int] = {}

    def room(self) -> tuple[int, int]:
        """Bytes free in the mounted file system (not counting root's reserve), block size."""
        st = os.statvfs(self.top)
        return st.f_bavail * st.f_frsize, st.f_frsize

    @contextmanager
    def _directory(self, path: str, create: bool) -> Iterator[int | None]:
        """A descriptor of the directory `path` (relative to the top), or None if absent."""
        fd = os.open(self.top, os.O_RDONLY | os.O_DIRECTORY)
        walked: list[str] = []
        try:
            self.directory_flags[""] = chflags(fd)
            for name in [part for part in path.split("/") if part]:
                walked.append(name)
                try:
                    child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        yield None
                        return
                    child = self._make_dir(fd, name, "/".join(walked))
                except OSError as error:
                    raise DomusError(
                        f"/{'/'.join(walked)} in the image is not a directory "
                        f"({error.strerror}); domus does not follow links there",
                        hint="make it a directory again, or reprovision",
                    ) from None
                os.close(fd)
                fd = child
                self.directory_flags["/".join(walked)] = chflags(fd)
            yield fd
        finally:
            os.close(fd)

    @staticmethod
    def _make_dir(parent: int, name: str, path: str) -> int:
        os.mkdir(name, 0o700, dir_fd=parent)
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
        os.fchown(fd, 0, 0)
        os.fchmod(fd, dir_mode(path))
        return fd

    def current(self, path: str) -> FileState | None:
        parent, _, name = path.rpartition("/")
        with self._directory(parent, create=False) as directory:
            if directory is None:
                return None
            try:
                st = os.stat(name, dir_fd=directory, follow_symlinks=False)
            except FileNotFoundError:
                return None
            if not stat.S_ISREG(st.st_mode):
                raise DomusError(
                    f"/{path} in the image is not a regular file; domus manages it "
                    "and does not replace a link or a directory",
                    hint="make it a regular file again, or reprovision",
                )
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=directory)
            with os.fdopen(fd, "rb") as f:
                size = os.fstat(fd).st_size
                if size > self.max_file_size:
                    raise too_large(self.where, path, size, self.max_file_size)
                data = f.read(self.max_file_size + 1)  # the domU may grow it meanwhile
                if len(data) > self.max_file_size:
                    raise too_large(self.where, path, len(data), self.max_file_size)
                flags = chflags(fd)
            return FileState(data, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, flags)

    def read_all(self, paths: Sequence[str]) -> dict[str, FileState | None]:
        return {path: self.current(path) for path in paths}

    def apply(self, changes: Sequence[Change], stamp: str, keep: int) -> list[str]:
        """Make each change, backing up what it replaces and keeping the newest `keep`
        backups of each file; returns the new backups' paths."""
        backups = []
        for change in changes:
            parent, _, name = change.path.rpartition("/")
            with self._directory(parent, create=True) as directory:
                assert directory is not None
                backup = self._replace(directory, name, change, stamp)
                for old in pruned_backups(name, set(os.listdir(directory)), keep):
                    os.unlink(old, dir_fd=directory)
                    self.pruned.append(f"{parent}/{old}" if parent else old)
                os.fsync(directory)
            if backup:
                backups.append(f"{parent}/{backup}" if parent else backup)
        return backups

    @staticmethod
    def _replace(directory: int, name: str, change: Change, stamp: str) -> str | None:
        temporary = _temporary(name)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary, dir_fd=directory)  # left by a killed converge
        backup = None
        if change.old is not None:
            backup = backup_name(name, stamp, set(os.listdir(directory)))
            os.link(name, backup, src_dir_fd=directory, dst_dir_fd=directory, follow_symlinks=False)
        if change.new is None:  # no longer managed: the backup is now its only name
            os.unlink(name, dir_fd=directory)
            return backup
        fd = os.open(
            temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=directory
        )
        try:
            view = memoryview(change.new.data)
            while view:
                view = view[os.write(fd, view) :]
            os.fchown(fd, change.new.uid, change.new.gid)
            os.fchmod(fd, change.new.mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temporary, name, src_dir_fd=directory, dst_dir_fd=directory)
        return backup
