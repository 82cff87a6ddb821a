"""The findings of each image's last check, kept so an unchanged image is not read again.

A verdict is kept under its subject ("root.img", "www1/local.img") with what identifies
the bytes it was found on, and is used again only while all of it still holds:

- the file's device, inode, size, mtime and ctime in nanoseconds, and its generation
  number where the system gives one (st_gen on NetBSD, FS_IOC_GETVERSION on Linux): a
  rebuild, a converge or a rewrite publishes a new inode or writes through the file;
- a digest of the image's first 80 KiB, where both file systems keep their superblock: a
  guest's writes need not touch the file's times. Linux's loop device and qemu's qdisk
  write through the file (its mtime moves), but NetBSD's vnd(4) writes the underlying
  file system's blocks with VOP_STRATEGY, past the file's write path, and its mtime stays.
  Every mount of a guest writes the superblock (FFS's fs_clean and fs_time, ext2fs's
  s_state and s_mtime), so an image a domU has had mounted since reads differently here;
- what the site expects of the image (its file system; an encrypted one's cipher), and the
  files a verdict also depends on (an encrypted image's params and passphrase files);
- the code of the checks themselves (a digest of tasks/checks and the readers), so a
  newer domus checks everything again.

A verdict is not kept for an image whose mtime or ctime is that close to the moment its
check began (RACY_TICKS, or RACY_SECONDS on a file system of whole seconds): a write in
the same tick of a coarse clock would leave its times as they were. `./domus check --all`
reads every image whatever is kept.

The file is the output directory's, 0600 (findings name files inside a domU's image),
written beside its name and renamed into place.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import struct
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from tasks.checks import Finding
from tasks.images.private import PRIVATE_FILE
from tasks.run.leftovers import _alive

FILE = "check-verdicts.json"
HEAD = 80 * 1024  # the ext2fs superblock at 1 KiB, FFS's at 8 or 64 KiB, 8 KiB long
# how close to its check an image's times may be for its verdict to be kept: ten of the
# coarsest clock ticks Linux and NetBSD stamp files with (10 ms at HZ=100), or, where the
# file system keeps whole seconds, two of those
RACY_TICKS = 0.1
RACY_SECONDS = 2
FS_IOC_GETVERSION = 0x80087601  # _IOR('v', 1, long), an int written
_CODE = Path(__file__).parent
CODE_FILES = (
    *sorted(_CODE.glob("*.py")),
    _CODE.parent / "images" / "ffs_reader.py",
    _CODE.parent / "formats" / "fsck_rules.py",
    _CODE.parent / "formats" / "superblocks.py",
)

Identity = list[object]


def code_digest() -> str:
    digest = hashlib.sha256()
    for path in CODE_FILES:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def generation(fd: int, st: os.stat_result) -> int | None:
    """The inode's generation number where the system tells it, else None."""
    if hasattr(st, "st_gen"):
        return int(st.st_gen)
    try:
        buffer = fcntl.ioctl(fd, FS_IOC_GETVERSION, b"\0" * 8)
    except OSError:
        return None
    return int(struct.unpack("=i", buffer[:4])[0])  # the kernel writes an int


def identity(path: Path) -> tuple[Identity, float] | None:
    """What identifies the bytes of `path` (a link followed) and the moment before which a
    write would have moved its times (seconds), or None when it cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        head = hashlib.sha256(os.pread(fd, HEAD, 0)).hexdigest()
        fields: Identity = [
            st.st_dev,
            st.st_ino,
            st.st_size,
            st.st_mtime_ns,
            st.st_ctime_ns,
            generation(fd, st),
            head,
        ]
    finally:
        os.close(fd)
    whole = st.st_mtime_ns % 10**9 == 0 and st.st_ctime_ns % 10**9 == 0
    newest = max(st.st_mtime_ns, st.st_ctime_ns) / 1e9
    return fields, newest + (RACY_SECONDS if whole else RACY_TICKS)


class Verdicts:
    """The kept verdicts of one output directory; `every`: none of them is used."""

    def __init__(self, output: Path, *, every: bool = False) -> None:
        self.path = output / FILE
        self.every = every
        self.code = code_digest()
        self.kept: dict[str, dict] = {}
        self.changed = False
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return  # none kept yet, or a file this domus cannot read: everything is read
        if isinstance(data, dict) and data.get("code") == self.code:
            verdicts = data.get("verdicts")
            self.kept = verdicts if isinstance(verdicts, dict) else {}

    def findings(
        self,
        subject: str,
        paths: Sequence[Path],
        expected: Sequence[object],
        check: Callable[[], list[Finding]],
    ) -> list[Finding]:
        """The findings kept for `subject` while `paths` (the image first) are as they were
        and the site `expected` the same of it (its file system, its cipher), else those
        of `check()`, kept for next time when the image is not racy."""
        began = time.time()
        before = [identity(path) for path in paths]
        key = [list(expected), *(found[0] if found else None for found in before)]
        kept = self.kept.get(subject)
        if not self.every and before[0] and isinstance(kept, dict) and kept.get("key") == key:
            try:
                return [Finding(**finding) for finding in kept["findings"]]
            except (KeyError, TypeError):
                pass  # a damaged entry: read the image again
        findings = check()
        after = [identity(path) for path in paths]
        racy = before[0] is None or before[0][1] > began
        if before == after and not racy:
            self.kept[subject] = {"key": key, "findings": [asdict(f) for f in findings]}
        else:
            self.kept.pop(subject, None)
        self.changed = True
        return findings

    def save(self) -> None:
        """Written beside the file and renamed into place, 0600 from its creation. A file
        that cannot be written (a full disk) costs the next check a read, nothing else."""
        if not self.changed or not self.path.parent.is_dir():
            return
        for left in self.path.parent.glob(f".{FILE}.*"):  # by a check that was killed
            pid = left.name.rpartition(".")[2]
            if pid.isdigit() and not _alive(int(pid)):
                left.unlink(missing_ok=True)
        temporary = self.path.with_name(f".{FILE}.{os.getpid()}")
        data = json.dumps({"code": self.code, "verdicts": self.kept}, indent=1)
        try:
            fd = os.open(
                temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, PRIVATE_FILE
            )
            with os.fdopen(fd, "w") as out:
                os.fchmod(fd, PRIVATE_FILE)
                out.write(data)
                out.flush()
                os.fsync(fd)
            os.replace(temporary, self.path)
        except OSError as error:
            print(f"domus: the findings of this check are not kept: {error}", file=sys.stderr)
        finally:
            temporary.unlink(missing_ok=True)
