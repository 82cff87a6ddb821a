"""What converging a local image changes: the managed files that differ, and the diff.

A managed file differs when its content, mode or owner is not what the site makes it; a
file domus wrote that the site no longer manages is removed (tasks/converge/retire.py);
every other file is left alone. The dry run prints the same changes as a unified diff.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from tasks.recipes.local import ManagedDir, ManagedFile
from tasks.recipes.templated import RC_D_BACKUPS

NEW_FILE_MODE = 0o644  # a managed file that keeps the image's mode but is missing from it
ENCODING = "utf-8"
# rc.conf is the domU's: bytes that are not UTF-8 are carried through untouched
ERRORS = "surrogateescape"
# /etc/rc hands rcorder(8) every file of /etc/rc.d, whatever its name or mode, and runs
# each one it prints (rc.subr skips a few suffixes, warning at every boot): an old script
# kept there would run beside the new one, with the same PROVIDE. Its backups are kept
# where neither looks.
RC_D = "etc/rc.d"


@dataclass(frozen=True)
class FileState:
    data: bytes
    mode: int  # permission bits
    uid: int
    gid: int
    # chflags (tasks/converge/flags.py) of the file in the image: not the site's to set
    flags: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Change:
    path: str
    old: FileState | None
    new: FileState | None  # None: removed, the old file kept as its backup
    directory: bool = False  # new is a directory to make where the image has nothing


def decode(data: bytes) -> str:
    return data.decode(ENCODING, ERRORS)


def wanted(
    files: Sequence[ManagedFile], current: Mapping[str, FileState | None]
) -> dict[str, FileState]:
    states = {}
    for file in files:
        data = file.text.encode(ENCODING, ERRORS)
        old = current.get(file.path)
        if file.mode is not None:
            states[file.path] = FileState(data, file.mode, file.uid, file.gid)
        elif old is not None:
            states[file.path] = FileState(data, old.mode, old.uid, old.gid)
        else:
            states[file.path] = FileState(data, NEW_FILE_MODE, 0, 0)
    return states


def plan(files: Sequence[ManagedFile], current: Mapping[str, FileState | None]) -> list[Change]:
    """The changes that make the image's managed files what the site says, in path order;
    a file made once is only made where the image has none."""
    present = {file.path for file in files if file.once and current.get(file.path) is not None}
    return [
        Change(path, current.get(path), state)
        for path, state in sorted(wanted(files, current).items())
        if current.get(path) != state and path not in present
    ]


def directory_changes(dirs: Sequence[ManagedDir], missing: set[str]) -> list[Change]:
    """The directories to make: those of `dirs` the image lacks (`missing`)."""
    return [
        Change(d.path, None, FileState(b"", d.mode, d.uid, d.gid), directory=True)
        for d in dirs
        if d.path in missing
    ]


def _lines(data: bytes) -> list[str]:
    lines = data.decode(ENCODING, "backslashreplace").splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n\\ No newline at end of file\n"
    return lines


def describe_metadata(change: Change) -> list[str]:
    old, new = change.old, change.new
    if new is None:
        return ["no longer managed, removed (kept as its backup)"]
    if change.directory:
        return [f"new directory, mode {new.mode:04o}, owner {new.uid}:{new.gid}"]
    if old is None:
        return [f"new file, mode {new.mode:04o}, owner {new.uid}:{new.gid}"]
    notes = []
    if old.mode != new.mode:
        notes.append(f"mode {old.mode:04o} -> {new.mode:04o}")
    if (old.uid, old.gid) != (new.uid, new.gid):
        notes.append(f"owner {old.uid}:{old.gid} -> {new.uid}:{new.gid}")
    return notes


def unified_diff(change: Change, name: str) -> str:
    """The change as `diff -u` shows it, with the domU's name before the path in the image."""
    where = f"{name}:/{change.path}"
    text = "".join(f"# {where}: {note}\n" for note in describe_metadata(change))
    old, new = change.old, change.new
    if change.directory or (old is not None and new is not None and old.data == new.data):
        return text
    before = _lines(old.data) if old is not None else []
    fromfile = f"{where}\t(in the image)" if old is not None else "/dev/null"
    tofile = f"{where}\t(converged)" if new is not None else "/dev/null"
    after = _lines(new.data) if new is not None else []
    diff = difflib.unified_diff(before, after, fromfile=fromfile, tofile=tofile)
    return text + "".join(diff)


def backup_dir(parent: str) -> str:
    """The directory the backups of the files in `parent` are kept in: beside them, but for
    rc.d scripts."""
    return RC_D_BACKUPS if parent == RC_D else parent


def backup_name(name: str, stamp: str, taken: set[str]) -> str:
    """NAME.domus-YYYYmmddTHHMMSS beside the file, made unique if a second converge is quick."""
    candidate, number = f"{name}.domus-{stamp}", 1
    while candidate in taken:
        number += 1
        candidate = f"{name}.domus-{stamp}.{number}"
    return candidate


def pruned_backups(name: str, names: set[str], keep: int) -> list[str]:
    """The backups of `name` among `names` beyond the newest `keep`, oldest first."""
    pattern = re.compile(re.escape(name) + r"\.domus-(\d{8}T\d{6})(?:\.(\d+))?")
    found = []
    for candidate in names:
        match = pattern.fullmatch(candidate)
        if match:
            found.append((match[1], int(match[2] or 1), candidate))
    found.sort()
    return [candidate for *_, candidate in found[: max(len(found) - keep, 0)]]


def stray_backups(name: str, names: Iterable[str]) -> list[str]:
    """The backups of `name` among `names`, oldest first: in /etc/rc.d, those an earlier
    converge kept there, which a converge moves to where the boot does not run them."""
    return pruned_backups(name, set(names), 0)


def room_needed(changes: Sequence[Change], block: int) -> int:
    """Bytes a converge writes into an image: every new file whole (the old one stays as
    its backup), in whole blocks, with one block more each for indirect blocks and the
    directory entries; a new directory's one block."""
    return sum(
        (len(change.new.data) + 2 * block - 1) // block * block
        for change in changes
        if change.new is not None  # a removal keeps the old file as its backup
    )
