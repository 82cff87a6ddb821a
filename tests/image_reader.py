"""Reading images back with The Sleuth Kit (fls, istat, icat): a reader that is not ours."""

from __future__ import annotations

import re
import stat
import subprocess
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

TSK_TYPES = {"ffs": "ufs", "ext2fs": "ext2"}
_PERMS = "rwxrwxrwx"


@dataclass(frozen=True)
class Inode:
    type: str  # "file", "dir", "link"
    mode: int  # permission bits including setuid/setgid/sticky
    uid: int
    gid: int
    size: int
    nlink: int
    number: int
    link: str | None = None  # symlink target


def parse_mode(text: str) -> int:
    """'drwxrwxrwt' -> 0o1777, '-rwsr-xr-x' -> 0o4755 (the type letter is dropped)."""
    bits = text[-9:]
    mode = 0
    for i, ch in enumerate(bits):
        if ch not in "-ST":
            mode |= 1 << (8 - i)
    specials = {2: (stat.S_ISUID, "sS"), 5: (stat.S_ISGID, "sS"), 8: (stat.S_ISVTX, "tT")}
    for index, (bit, letters) in specials.items():
        if bits[index] in letters:
            mode |= bit
    return mode


class ImageReader:
    def __init__(self, image: Path, fs: str) -> None:
        self.image = image
        self.fstype = TSK_TYPES[fs]

    def _run(self, *argv: str) -> bytes:
        return subprocess.run(
            [argv[0], "-f", self.fstype, *argv[1:]], check=True, capture_output=True
        ).stdout

    @cached_property
    def inodes(self) -> dict[str, int]:
        """path (no leading slash) -> inode number, for every allocated name."""
        out = self._run("fls", "-r", "-p", str(self.image)).decode()
        names = {}
        for line in out.splitlines():
            match = re.match(r"^(\S)/(\S) (\*?)\s*(\d+)(?:\(realloc\))?:\t(.*)$", line)
            if not match or match.group(3) or match.group(1) == "V":
                continue
            name = match.group(5)
            if name.startswith("$Orphan") or name in ("lost+found",):
                continue
            names[name] = int(match.group(4))
        return names

    def paths(self) -> set[str]:
        return set(self.inodes)

    def stat(self, path: str) -> Inode:
        number = self.inodes[path] if path != "." else 2  # the root directory is inode 2 in both
        out = self._run("istat", str(self.image), str(number)).decode()
        fields = dict(re.findall(r"^([^:\n]+):\s*(.*)$", out, re.M))
        uid, gid = (int(x) for x in fields["uid / gid"].split("/"))
        letter = fields["mode"][0]
        kind = {"d": "dir", "r": "file", "-": "file", "l": "link"}[letter]
        return Inode(
            kind,
            parse_mode(fields["mode"]),
            uid,
            gid,
            int(fields["size"]),
            int(fields["num of links"]),
            number,
            fields.get("symbolic link to"),
        )

    def read(self, path: str) -> bytes:
        return self._run("icat", str(self.image), str(self.inodes[path]))

    def text(self, path: str) -> str:
        return self.read(path).decode()
