"""Every file of an image read back by The Sleuth Kit's library, in a process of its own.

`python -m tasks.checks.tsk_readback IMAGE FSTYPE` (FSTYPE: ext2fs) walks the tree from the
root inode and prints each problem it finds as a JSON string on a line of its own, at most
MOST, then exits 0. tasks/checks/readback.py starts it, once an image, under the limits of a
tool reading a guest's disk, and reads its lines: pytsk3 is C code parsing bytes the guest
chose, so it never runs in domus's own process. It imports nothing of domus's but the cap,
so that it starts in a few tens of milliseconds.

Each inode is read once whatever its names (hard links); a symlink is not followed; a
directory reached twice is named and not entered again, so a crafted tree cannot lead the
walk in circles. A regular file's data is read CHUNK bytes at a time and counted: the
memory it takes does not grow with the file, and a file that cannot be read, or reads back
longer or shorter than its inode says, is named.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator

import pytsk3

from tasks.checks import MOST

CHUNK = 1 << 20
FS_TYPES = {"ext2fs": pytsk3.TSK_FS_TYPE_EXT2}
# pytsk3 prefixes each error with its own function and source line
_WRAPPER = re.compile(r"^\w+: \([\w.]+:\d+\) ")


def _said(error: OSError) -> str:
    return " ".join(_WRAPPER.sub("", str(error)).split())


def _shown(path: bytes) -> str:
    return "/" + path.decode(errors="backslashreplace")


def _length(entry: pytsk3.File, size: int) -> int:
    """The bytes of `entry`'s data read back, up to `size`, one CHUNK at a time."""
    length = 0
    while length < size:
        data = entry.read_random(length, min(CHUNK, size - length))
        if not data:
            break
        length += len(data)
    return length


def problems(image: str, fs: str) -> Iterator[str]:
    """What reading every directory and every regular file of `image` finds."""
    try:
        tsk = pytsk3.FS_Info(pytsk3.Img_Info(image), offset=0, type=FS_TYPES[fs])
    except OSError as error:
        yield f"The Sleuth Kit cannot open the file system: {_said(error)}"
        return
    root = int(tsk.info.root_inum)
    directories = {root}
    read: set[int] = set()
    pending = [(root, b"")]
    while pending:
        number, path = pending.pop()
        try:
            for entry in tsk.open_dir(inode=number):
                name = entry.info.name
                if name.name in (b".", b"..") or int(name.flags) & int(
                    pytsk3.TSK_FS_NAME_FLAG_UNALLOC
                ):
                    continue
                at = path + b"/" + name.name if path else name.name
                meta = entry.info.meta
                if meta is None:
                    yield f"{_shown(at)} (inode {name.meta_addr}): its inode cannot be read"
                    continue
                inode, kind = int(meta.addr), int(meta.type)
                if kind == int(pytsk3.TSK_FS_META_TYPE_DIR):
                    if inode in directories:
                        yield f"{_shown(at)} (inode {inode}): a directory reached twice"
                    else:
                        directories.add(inode)
                        pending.append((inode, at))
                elif kind == int(pytsk3.TSK_FS_META_TYPE_REG) and inode not in read:
                    read.add(inode)
                    size = int(meta.size)
                    try:
                        length = _length(entry, size)
                    except OSError as error:
                        yield f"{_shown(at)} (inode {inode}): {_said(error)}"
                        continue
                    if length != size:
                        yield (
                            f"{_shown(at)} (inode {inode}): read {length} bytes, "
                            f"its inode says {size}"
                        )
        except OSError as error:
            yield f"{_shown(path)} (inode {number}): {_said(error)}"


def main(argv: list[str]) -> int:
    image, fs = argv
    for count, problem in enumerate(problems(image, fs), 1):
        # a line as soon as it is found: a reader stopped later still has it
        sys.stdout.write(json.dumps(problem) + "\n")
        sys.stdout.flush()
        if count >= MOST:
            break
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
