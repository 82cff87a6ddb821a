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
from tasks.converge.plan import (
    Change,
    FileState,
    backup_dir,
    backup_name,
    pruned_backups,
    stray_backups,
)
from tasks.images.guest_limits import MAX_FILE_SIZE, too_large
from tasks.recipes.templated import dir_mode
from tasks.run.errors import DomusError

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


def _files(directory: int) -> list[str]:
    """The names of the regular files in `directory`."""
    return [
        name
        for name in os.listdir(directory)
        if stat.S_ISREG(os.stat(name, dir_fd=directory, follow_symlinks=False).st_mode)
    ]


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
                    path_so_far = "/".join(walked)
                    child = self._make_dir(fd, name, FileState(b"", dir_mode(path_so_far), 0, 0))
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
    def _make_dir(parent: int, name: str, state: FileState) -> int:
        os.mkdir(name, 0o700, dir_fd=parent)
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
        os.fchown(fd, state.uid, state.gid)
        os.fchmod(fd, state.mode)
        return fd

    def missing_dirs(self, paths: Sequence[str]) -> set[str]:
        missing = set()
        for path in paths:
            parent, _, name = path.rpartition("/")
            try:
                with self._directory(parent, create=False) as directory:
                    if directory is None:
                        missing.add(path)
                        continue
                    os.stat(name, dir_fd=directory, follow_symlinks=False)
            except FileNotFoundError:
                missing.add(path)
            except DomusError:  # a link or file on the way: the domU's, as what lies past it
                continue
        return missing

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
            kept_in = backup_dir(parent)
            with contextlib.ExitStack() as stack:
                directory = stack.enter_context(self._directory(parent, create=True))
                assert directory is not None
                if change.directory:
                    assert change.new is not None
                    os.close(self._make_dir(directory, name, change.new))
                    os.fsync(directory)
                    continue
                # backups an earlier converge left beside the file, where they would run
                strays = [] if kept_in == parent else stray_backups(name, _files(directory))
                kept = (
                    directory
                    if kept_in == parent
                    else stack.enter_context(
                        self._directory(kept_in, create=change.old is not None or bool(strays))
                    )
                )
                for stray in strays:
                    assert kept is not None
                    os.rename(stray, stray, src_dir_fd=directory, dst_dir_fd=kept)
                backup = self._replace(directory, kept, name, change, stamp)
                if kept is not None:
                    for old in pruned_backups(name, set(os.listdir(kept)), keep):
                        os.unlink(old, dir_fd=kept)
                        self.pruned.append(f"{kept_in}/{old}" if kept_in else old)
                    os.fsync(kept)
                os.fsync(directory)
            if backup:
                backups.append(f"{kept_in}/{backup}" if kept_in else backup)
        return backups

    @staticmethod
    def _replace(
        directory: int, kept: int | None, name: str, change: Change, stamp: str
    ) -> str | None:
        """`kept`: the directory the old file is kept in, under its backup name."""
        temporary = _temporary(name)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary, dir_fd=directory)  # left by a killed converge
        backup = None
        if change.old is not None:
            assert kept is not None
            backup = backup_name(name, stamp, set(os.listdir(kept)))
            os.link(name, backup, src_dir_fd=directory, dst_dir_fd=kept, follow_symlinks=False)
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
