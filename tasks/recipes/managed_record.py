"""The record, inside a local image, of the files domus wrote there: `var/db/domus/managed`.

One line per file, `SHA256 PATH`: the SHA-256 of the bytes domus wrote, then the path below
the image's top (/local in the domU), sorted by path. The build writes it and every converge
that changes managed files rewrites it, so it moves with the image between dom0s. It lets a
converge remove a file the site no longer manages, and only while the domU has left it as
domus wrote it.

It is read back from the domU's own disk, so it is parsed as hostile input: a record over
LIMIT bytes is ignored whole, and a line that is not a digest and a plain relative path
below the image's own trees is ignored; both with a warning, neither an error.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

RECORD = "var/db/domus/managed"
RECORD_MODE = 0o600  # root's alone, as the files under /etc/cgd it names
LIMIT = 256 << 10  # bytes: thousands of lines, far more than a site writes
HEADER = "# files domus wrote in this local image: SHA-256 of what it wrote, path below /local\n"
PATH_MAX, NAME_MAX = 1024, 255  # NetBSD's limits
_LINE = re.compile(r"([0-9a-f]{64}) (.+)")
# no control characters; no quote or backslash, which debugfs cannot name
_UNSAFE = re.compile(r'[\x00-\x1f\x7f"\\]')
SHOWN = 3  # ignored lines named in a warning


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def record_text(written: Mapping[str, str]) -> str:
    """The record of `written` (path: digest)."""
    return HEADER + "".join(f"{written[path]} {path}\n" for path in sorted(written))


def unsafe_path(path: str, tops: Collection[str], never: Collection[str]) -> str | None:
    """Why `path` cannot be a file domus wrote in a local image; None when it can."""
    if _UNSAFE.search(path):
        return "a control character, quote or backslash"
    if path.startswith("/"):
        return "an absolute path"
    if len(path) > PATH_MAX:
        return "longer than PATH_MAX"
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "an empty, . or .. component"
    if any(len(part.encode()) > NAME_MAX for part in parts):
        return "a component longer than NAME_MAX"
    if len(parts) < 2 or parts[0] not in tops:
        return f"not below {', '.join('/' + top for top in sorted(tops))}"
    if path in never:
        return "never a written file"
    return None


@dataclass
class Parsed:
    written: dict[str, str] = field(default_factory=dict)  # path: digest
    warnings: list[str] = field(default_factory=list)


def parse_record(
    data: bytes, where: str, tops: Collection[str], never: Collection[str] = ()
) -> Parsed:
    """The paths and digests of a record read from an image; what is not plainly one of
    them is ignored, with a warning naming `where` (the image)."""
    parsed = Parsed()
    if len(data) > LIMIT:
        parsed.warnings.append(
            f"{where}: /{RECORD} is {len(data)} bytes, over {LIMIT}: ignored; no file the "
            "site no longer manages is removed, and the next converge writes it anew"
        )
        return parsed
    ignored: list[str] = []
    twice: set[str] = set()  # a path named twice is trusted neither time
    for number, raw in enumerate(data.split(b"\n"), 1):
        if not raw.strip() or raw.startswith(b"#"):
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            ignored.append(f"line {number}: not UTF-8")
            continue
        match = _LINE.fullmatch(line)
        if match is None:
            ignored.append(f"line {number}: not `SHA256 PATH`")
            continue
        path = match[2]
        why = unsafe_path(path, tops, never)
        if why is None and (path in parsed.written or path in twice):
            why = "named twice"
            twice.add(path)
            parsed.written.pop(path, None)
        if why is not None:
            ignored.append(f"line {number}: {why}")
            continue
        parsed.written[path] = match[1]
    if ignored:
        more = f", and {len(ignored) - SHOWN} more" if len(ignored) > SHOWN else ""
        parsed.warnings.append(
            f"{where}: /{RECORD}: ignored {len(ignored)} line(s) ({'; '.join(ignored[:SHOWN])}"
            f"{more}); domus removes nothing they name"
        )
    return parsed
