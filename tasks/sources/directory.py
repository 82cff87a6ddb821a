"""A root (or package) tree given as a directory, with owners from a METALOG if it has one.

Modes come from the directory. Owners come from the directory only when it is owned by
root (a tree extracted by root on the dom0); a tree checked out or unpacked by an
ordinary user belongs to root:wheel in the image, unless its METALOG says otherwise.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from tasks.formats.mtree import parse_device, parse_metalog
from tasks.images.tree import ROOT, SPECIAL, Entry, Tree, beneath_what, blocked_by
from tasks.run.errors import DomusError
from tasks.run.log import note

_TYPES = {
    stat.S_IFDIR: "dir",
    stat.S_IFREG: "file",
    stat.S_IFLNK: "link",
    stat.S_IFCHR: "char",
    stat.S_IFBLK: "block",
    stat.S_IFIFO: "fifo",
}


def scan(top: Path) -> dict[str, Entry]:
    """Every directory, file, symlink, device node and FIFO below `top`; sockets are left
    out (a file system holds none that outlive the process that made them)."""
    keep_owners = top.stat().st_uid == 0
    entries: dict[str, Entry] = {ROOT: _entry(top, top.stat(), keep_owners)}
    stack = [(top, "")]
    while stack:
        directory, prefix = stack.pop()
        with os.scandir(directory) as listing:
            for item in listing:
                st = item.stat(follow_symlinks=False)
                if stat.S_IFMT(st.st_mode) not in _TYPES:
                    note(f"warning: {item.path}: a socket (or other special file) is left out")
                    continue
                path = prefix + item.name
                entries[path] = _entry(Path(item.path), st, keep_owners)
                if stat.S_ISDIR(st.st_mode):
                    stack.append((Path(item.path), path + "/"))
    return entries


def _entry(path: Path, st: os.stat_result, keep_owners: bool) -> Entry:
    kind = _TYPES[stat.S_IFMT(st.st_mode)]
    uid, gid = (st.st_uid, st.st_gid) if keep_owners else (0, 0)
    link = os.readlink(path) if kind == "link" else None
    mode = 0o755 if kind == "link" else stat.S_IMODE(st.st_mode)
    device = (os.major(st.st_rdev), os.minor(st.st_rdev)) if kind in ("char", "block") else None
    return Entry(kind, mode, uid, gid, link, device)


def apply_metalog(entries: dict[str, Entry], top: Path, metalog: Path) -> None:
    """Owners and modes from the METALOG; directories and links it names are created."""
    users = _names(top / "etc" / "master.passwd", top / "etc" / "passwd")
    groups = _names(top / "etc" / "group")
    lines = parse_metalog(metalog.read_text(), metalog)
    for path, (line, words) in lines.items():
        where = f"{metalog}:{line}: ./{path}"
        current = entries.get(path)
        kind = words.get("type", current.type if current else "file")
        if current is None and kind == "file":
            raise DomusError(
                f"{where}: no such file in {top}", hint="remove the line or add the file"
            )
        if current is not None and current.type != kind:
            raise DomusError(f"{where}: METALOG says type={kind}, the tree has a {current.type}")
        if kind not in ("file", "dir", "link", *SPECIAL):
            raise DomusError(f"{where}: type={kind}: expected file, dir, link, char, block or fifo")
        base = current or Entry(kind, 0o755 if kind == "dir" else 0o644, link=words.get("link"))
        device = base.device
        if "device" in words:
            try:
                device = parse_device(words["device"])
            except ValueError:
                raise DomusError(
                    f"{where}: device={words['device']}: expected FORMAT,major,minor "
                    "such as netbsd,2,2"
                ) from None
        if kind in ("char", "block") and device is None:
            raise DomusError(f"{where}: type={kind} needs device=FORMAT,major,minor")
        entries[path] = Entry(
            kind,
            _mode(words["mode"], where) if "mode" in words else base.mode,
            _id(words, "uid", "uname", users, base.uid, where),
            _id(words, "gid", "gname", groups, base.gid, where),
            base.link,
            device,
        )
    for path, (line, _) in lines.items():
        above = blocked_by(entries, path)
        if above is not None:
            raise DomusError(
                f"{metalog}:{line}: ./{path} lies beneath {beneath_what(entries, above)} "
                f"in {top}; nothing is created through a link",
                hint="make it a directory in the tree, or remove the line",
            )


def _id(
    words: dict[str, str], number: str, name: str, table: dict[str, int], default: int, where: str
) -> int:
    if number in words:
        if not words[number].isdigit() or int(words[number]) > 0xFFFFFFFE:
            raise DomusError(
                f"{where}: {number}={words[number]}: expected a number from 0 to 4294967294",
                hint=f"fix the line, or give {name}= with a name from the tree's own files",
            )
        return int(words[number])
    if name in words:
        try:
            return table[words[name]]
        except KeyError:
            raise DomusError(
                f"{where}: {name}={words[name]} is not in the tree's own passwd/group files"
            ) from None
    return default


def _mode(text: str, where: str) -> int:
    """An mtree `mode=`: octal permission bits, as mtree(8) reads them."""
    if not re.fullmatch(r"0*[0-7]{1,4}", text):
        raise DomusError(
            f"{where}: mode={text}: expected an octal mode such as 0755",
            hint="fix the line in the METALOG",
        )
    return int(text, 8)


def _names(*candidates: Path) -> dict[str, int]:
    """name -> id from the first of the tree's passwd-style files that exists."""
    for candidate in candidates:
        if candidate.is_file():
            table = {}
            for line in candidate.read_text().splitlines():
                fields = line.split(":")
                if len(fields) > 2 and not line.startswith("#") and fields[2].isdigit():
                    table[fields[0]] = int(fields[2])
            return table
    return {}


def load_tree(top: Path, metalog: Path | None, staging: Path) -> Tree:
    entries = scan(top)
    if metalog is not None:
        apply_metalog(entries, top, metalog)
    return Tree.stage(top, entries, staging)
