"""Immutable and append-only managed files: NetBSD's rule, on every converge path.

NetBSD's kernel refuses link(2), rename(2) over, and unlink(2) of a file flagged immutable
or append-only (chflags schg, sappnd, uchg, uappnd), and a new entry, a rename or a
removal in a directory so flagged. A converge keeps the old file under a backup name (a
link), renames the new one over it and may remove old backups: so a managed file that
would change, or whose directory would, with such a flag is not changed at all. The
converge of its image is refused before anything is written, whichever path would write
it (a mount on Linux would write it, debugfs and the FFS rewrite would drop the flag).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from tasks.converge.plan import Change
from tasks.run.errors import DomusError

# sys/sys/stat.h: the chflags(2) flags, FFS's di_flags
UF_IMMUTABLE, UF_APPEND = 0x00000002, 0x00000004
SF_IMMUTABLE, SF_APPEND = 0x00020000, 0x00040000
NAMES = {SF_IMMUTABLE: "schg", SF_APPEND: "sappnd", UF_IMMUTABLE: "uchg", UF_APPEND: "uappnd"}
# sys/ufs/ext2fs/ext2fs_dinode.h: e2di_flags (and Linux's FS_IOC_GETFLAGS, the same bits)
EXT2_IMMUTABLE, EXT2_APPEND = 0x00000010, 0x00000020


def from_ext2(flags: int) -> int:
    """The chflags a NetBSD domU sees on an ext2fs inode: ext2fs_getattr() shows
    EXT2_IMMUTABLE as uchg and EXT2_APPEND as uappnd (kernels without EXT2FS_SYSTEM_FLAGS,
    GENERIC among them), and ext2fs_setattr() sets them from those."""
    return (UF_IMMUTABLE if flags & EXT2_IMMUTABLE else 0) | (
        UF_APPEND if flags & EXT2_APPEND else 0
    )


def names(flags: int) -> list[str]:
    return [name for bit, name in NAMES.items() if flags & bit]


def changed_directory(path: str, directories: Mapping[str, int]) -> str | None:
    """The directory whose entries a change of `path` writes: its parent, or the deepest
    existing ancestor (where domus makes the missing ones); "" is the top."""
    parts = path.split("/")[:-1]
    for depth in range(len(parts), -1, -1):
        directory = "/".join(parts[:depth])
        if directory in directories:
            return directory
    return None


def require_changeable(
    image: Path, changes: Sequence[Change], directories: Mapping[str, int]
) -> None:
    """A DomusError naming every changed managed file (or its directory) that is immutable
    or append-only; `directories`: the flags of the managed files' existing ancestors."""
    locked: dict[str, tuple[list[str], str]] = {}  # path -> its flags, what it stops
    for change in changes:
        own = names(change.old.flags) if change.old is not None else []
        directory = changed_directory(change.path, directories)
        if own:
            locked[change.path] = (own, "")
        elif directory is not None and names(directories[directory]):
            locked[directory] = (names(directories[directory]), f" (holding /{change.path})")
    if not locked:
        return
    what = "; ".join(f"/{path} is flagged {','.join(f)}{why}" for path, (f, why) in locked.items())
    clear = "; ".join(
        f"chflags {','.join('no' + name for name in f)} /{path}" for path, (f, _) in locked.items()
    )
    raise DomusError(
        f"{image}: {what}. NetBSD refuses to replace or link an "
        "immutable or append-only file, or to change the entries of such a directory, and "
        "so does domus; nothing was changed",
        hint=f"clear the flag in the domU: {clear} (schg and sappnd only at securelevel 0 "
        "or below, as in single-user mode: securelevel(7)), then converge again",
    )
