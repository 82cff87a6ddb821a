"""Every file of an image read back, in one streaming pass, bounded by what the image holds.

A local.img is the guest's: every byte of it, its inode sizes, block pointers, directory
entries and link counts included, may be crafted. So:

- FFS is read with domus's own reader (tasks/images/ffs_reader.py), which checks the
  superblock against the image before it loops over anything, refuses a block pointer
  outside the file system, an indirect block met twice and a directory reached twice; each
  inode's allocated data is read once, holes skipped, whatever its names and size claim.
  Link counts are compared with the names found, as fsck_ffs's pass 4 does.
- ext2fs is read with The Sleuth Kit (a reader that is neither Linux's nor ours): one
  `icat` an inode, not a name, its output counted as it streams, under a time limit.
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from pathlib import Path

from tasks.images.ffs_reader import CHUNK, FfsError, FfsImage
from tasks.images.guest_limits import GUEST_TOOL_SECONDS, limit_memory
from tasks.tools import require, run

TSK_TYPES = {"ffs": "ufs", "ext2fs": "ext2"}
# fls -r -p -l: "r/r 13:\tetc/x\tmtime\tatime\tctime\tcrtime\tsize\tuid\tgid"
_FLS_LINE = re.compile(r"^(\S)/(\S) (\*?)\s*(\d+)(?:\(realloc\))?:\t(.*)$")
# the most problems one image reports: a crafted image can have millions
MOST = 20
# seconds one tool may read one image, or one file of it
TOOL_SECONDS = GUEST_TOOL_SECONDS


def ffs_read_problems(image: Path) -> list[str]:
    """What reading every entry and every file's data of an FFS image finds: the first
    structural problem (the reader stops there), else every link count that disagrees."""
    found: list[str] = []
    names: Counter[int] = Counter()
    subdirs: Counter[int] = Counter()
    nlink: dict[int, tuple[int, bytes]] = {}
    directories: dict[bytes, int] = {}
    try:
        with FfsImage(image) as reader:
            for path, inode in reader.walk():
                number, kind = inode.inode, inode.type
                names[number] += 1
                nlink.setdefault(number, (inode.nlink, path))
                if kind == "dir":
                    directories[path] = number
                    if path:
                        subdirs[directories[path.rpartition(b"/")[0]]] += 1
                elif names[number] > 1:
                    continue
                elif kind == "file":
                    for offset, length in reader.data_extents(inode):
                        for at in range(offset, offset + length, CHUNK):
                            reader.read_at(at, min(CHUNK, offset + length - at))
                elif kind == "link":
                    reader.link_target(inode)
    except FfsError as error:
        return [str(error)]
    for inode, (count, path) in nlink.items():
        # a directory is named by its parent, its own "." and each child's ".."
        wanted = 2 + subdirs[inode] if path in directories else names[inode]
        if count != wanted:
            shown = path.decode(errors="backslashreplace") or "."
            found.append(f"/{shown} (inode {inode}): link count {count}, {wanted} names found")
            if len(found) >= MOST:
                break
    return found


def tsk_files(listing: str) -> list[tuple[int, str, int]]:
    """(inode, path, size) of every allocated regular file in `fls -r -p -l` output."""
    files = []
    for line in listing.splitlines():
        match = _FLS_LINE.match(line)
        if not match or match[3] or match[1] != "r":
            continue
        fields = match[5].split("\t")
        if len(fields) >= 6 and fields[5].isdigit():
            files.append((int(match[4]), fields[0], int(fields[5])))
    return files


def _icat_length(icat: str, fstype: str, image: Path, inode: int) -> tuple[int, str]:
    """The bytes icat writes for `inode`, counted as they stream, and its stderr."""
    with subprocess.Popen(
        [icat, "-f", fstype, str(image), str(inode)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=limit_memory,
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        length = 0
        while chunk := process.stdout.read(CHUNK):
            length += len(chunk)
        error = process.stderr.read(64 * 1024).decode(errors="replace").strip()
        process.wait(timeout=TOOL_SECONDS)
    if process.returncode != 0 and not error:
        error = f"icat exit {process.returncode}"
    return length, error


def tsk_read_problems(image: Path, fs: str) -> list[str]:
    """Every directory listed and every regular file read back by The Sleuth Kit, once an
    inode; a file that cannot be read, or reads back shorter or longer than its inode
    says, is named."""
    fstype = TSK_TYPES[fs]
    listing = run(
        ["fls", "-f", fstype, "-r", "-p", "-l", str(image)],
        f"reading {image.name}",
        check=False,
        errors="surrogateescape",
        guest=True,
    )
    icat = require("icat", f"reading {image.name}")
    if listing.returncode != 0:
        return [f"fls cannot list the tree: {listing.stderr.strip() or listing.returncode}"]
    found = [f"fls: {line}" for line in listing.stderr.splitlines()[:MOST] if line.strip()]
    read: set[int] = set()
    for inode, path, size in tsk_files(listing.stdout):
        if inode in read:
            continue
        read.add(inode)
        length, error = _icat_length(icat, fstype, image, inode)
        if error:
            found.append(f"/{path} (inode {inode}): {error}")
        elif length != size:
            found.append(f"/{path} (inode {inode}): read {length} bytes, its inode says {size}")
        if len(found) >= MOST:
            break
    return found


def read_back_problems(image: Path, fs: str) -> list[str]:
    if fs == "ffs":
        return ffs_read_problems(image)
    return tsk_read_problems(image, fs)
