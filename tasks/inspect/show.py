"""`./domus show IMAGE:PATH` prints a file of an image; `./domus ls IMAGE:PATH` lists a
directory (or one entry): mode, owner and group (numeric, as the image holds them), size,
modification time (this host's time zone) and name, as `ls -lnb` would: what the domU
chose (names, link targets; `show`'s bytes when they go to a terminal) is escaped
(tasks/inspect/escaping.py)."""

from __future__ import annotations

import stat
import sys
import time

from tasks.errors import DomusError
from tasks.images.ffs_reader import TYPES
from tasks.inspect.escaping import escaped, for_terminal_chunks
from tasks.inspect.names import locate, parse
from tasks.inspect.readers import Entry, opened
from tasks.site import Site

TYPE_BITS = {kind: bits for bits, kind in TYPES.items()}


def mode_string(entry: Entry) -> str:
    return stat.filemode(TYPE_BITS.get(entry.type, 0) | entry.mode)


def size_text(entry: Entry) -> str:
    return f"{entry.device[0]}, {entry.device[1]}" if entry.device else str(entry.size)


def ls_line(entry: Entry, widths: tuple[int, int, int]) -> str:
    size = size_text(entry)
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.mtime))
    name = escaped(entry.name) + (f" -> {escaped(entry.link)}" if entry.link is not None else "")
    uid, gid, width = widths
    owner = f"{entry.uid:>{uid}} {entry.gid:>{gid}}"
    return f"{mode_string(entry)}  {owner}  {size:>{width}}  {when}  {name}"


def listing(entries: list[Entry]) -> str:
    entries = sorted(entries, key=lambda e: e.name)
    widths = (
        max((len(str(e.uid)) for e in entries), default=1),
        max((len(str(e.gid)) for e in entries), default=1),
        max((len(size_text(e)) for e in entries), default=1),
    )
    return "".join(ls_line(entry, widths) + "\n" for entry in entries)


def ls(site: Site, target: str) -> int:
    name, path = parse(target)
    located = locate(site, name)
    with opened(located) as reader:
        entry = reader.entry(path)
        entries = reader.children(path) if entry.type == "dir" else [entry]
    sys.stdout.write(listing(entries))
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
