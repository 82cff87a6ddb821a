"""`./domus show IMAGE:PATH` prints a file of an image; `./domus ls IMAGE:PATH` lists a
directory (or one entry): mode, owner and group (by the names of the image's own
etc/passwd and etc/group where it has them, else numeric, as `ls -n` with `--numeric`),
size, modification time (this host's time zone) and name, as `ls -lb` would: what the domU
chose (names, link targets; `show`'s bytes when they go to a terminal) is escaped
(tasks/inspect/escaping.py)."""

from __future__ import annotations

import stat
import sys
import time

from tasks.images.ffs_reader import TYPES
from tasks.inspect.escaping import escaped, for_terminal_chunks
from tasks.inspect.names import locate, parse
from tasks.inspect.readers import Entry, Reader, opened
from tasks.run.errors import DomusError
from tasks.site import Site

TYPE_BITS = {kind: bits for bits, kind in TYPES.items()}


def mode_string(entry: Entry) -> str:
    return stat.filemode(TYPE_BITS.get(entry.type, 0) | entry.mode)


def size_text(entry: Entry) -> str:
    return f"{entry.device[0]}, {entry.device[1]}" if entry.device else str(entry.size)


Names = tuple[dict[int, str], dict[int, str]]  # uid -> user, gid -> group


def ls_line(entry: Entry, widths: tuple[int, int, int], names: Names = ({}, {})) -> str:
    size = size_text(entry)
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.mtime))
    name = escaped(entry.name) + (f" -> {escaped(entry.link)}" if entry.link is not None else "")
    uid, gid, width = widths
    user, group = owner_names(entry, names)
    align = ">" if names == ({}, {}) else "<"  # numbers to the right, names to the left
    owner = f"{user:{align}{uid}} {group:{align}{gid}}"
    return f"{mode_string(entry)}  {owner}  {size:>{width}}  {when}  {name}"


def owner_names(entry: Entry, names: Names) -> tuple[str, str]:
    users, groups = names
    return users.get(entry.uid, str(entry.uid)), groups.get(entry.gid, str(entry.gid))


def listing(entries: list[Entry], names: Names = ({}, {})) -> str:
    entries = sorted(entries, key=lambda e: e.name)
    owners = [owner_names(e, names) for e in entries]
    widths = (
        max((len(user) for user, _ in owners), default=1),
        max((len(group) for _, group in owners), default=1),
        max((len(size_text(e)) for e in entries), default=1),
    )
    return "".join(ls_line(entry, widths, names) + "\n" for entry in entries)


def id_names(reader: Reader, path: str) -> dict[int, str]:
    """`name:...:id:...` lines of the image's own etc/passwd or etc/group, the first name of
    each id as NetBSD's getpwuid(3) finds it; escaped, as the domU chose them."""
    try:
        text = reader.read(path).decode("utf-8", "surrogateescape")
    except DomusError:  # not there (a pkg.img), or not a file
        return {}
    found: dict[int, str] = {}
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) > 2 and fields[2].isdigit() and not line.startswith(("#", "+", "-")):
            found.setdefault(int(fields[2]), escaped(fields[0]))
    return found


def ls(site: Site, target: str, numeric: bool = False) -> int:
    name, path = parse(target)
    located = locate(site, name)
    with opened(located) as reader:
        entry = reader.entry(path)
        entries = reader.children(path) if entry.type == "dir" else [entry]
        names = (
            ({}, {}) if numeric else (id_names(reader, "etc/passwd"), id_names(reader, "etc/group"))
        )
    sys.stdout.write(listing(entries, names))
    sys.stdout.flush()
    return 0


def show(site: Site, target: str) -> int:
    name, path = parse(target)
    located = locate(site, name)
    with opened(located) as reader:
        entry = reader.entry(path)
        if entry.type == "dir":
            raise DomusError(
                f"{located.name}:/{path} is a directory",
                hint=f"`./domus ls {located.name}:/{path}` lists it",
            )
        if entry.type == "link":
            raise DomusError(
                f"{located.name}:/{path} is a symbolic link to {escaped(entry.link or '')}",
                hint="show the file it leads to (a link is read inside the domU's own tree)",
            )
        if entry.type != "file":
            raise DomusError(f"{located.name}:/{path} is a {entry.type}, which holds no content")
        # raw into a pipe or a file, which get the file as it is
        chunks = reader.chunks(path)
        for chunk in for_terminal_chunks(chunks) if sys.stdout.isatty() else chunks:
            sys.stdout.buffer.write(chunk)
        sys.stdout.flush()
    return 0
