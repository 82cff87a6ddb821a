"""mtree specs: the manifest's language for makefs, and the METALOG a source tree may bring.

Only the full-path form is used (every line names `./path`), the form NetBSD's
`build.sh -U` writes to METALOG and `makefs -F` reads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from tasks.images.tree import ROOT, Entry
from tasks.run.errors import DomusError

_PLAIN = re.compile(r"[A-Za-z0-9._/+,:@%=~-]")


def encode(name: str) -> str:
    """mtree's vis(3) encoding: anything but plain characters as a backslash octal escape."""
    out = []
    for ch in name:
        if _PLAIN.fullmatch(ch):
            out.append(ch)
        else:
            # a name that is not UTF-8 keeps its own bytes (os's surrogateescape)
            out.extend(f"\\{byte:03o}" for byte in ch.encode(errors="surrogateescape"))
    return "".join(out)


def decode(name: str) -> str:
    raw = re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), name.encode())
    return raw.decode(errors="surrogateescape")


def spec_line(path: str, entry: Entry) -> str:
    name = "." if path == ROOT else "./" + encode(path)
    words = [name, f"type={entry.type}", f"uid={entry.uid}", f"gid={entry.gid}"]
    words.append(f"mode={entry.mode:04o}")
    if entry.type == "link":
        words.append(f"link={encode(entry.link or '')}")
    if entry.device is not None:
        words.append(f"device=netbsd,{entry.device[0]},{entry.device[1]}")
    return " ".join(words)


def write_spec(entries: Iterable[tuple[str, Entry]], dest: Path) -> None:
    lines = ["#mtree v2.0", *(spec_line(p, e) for p, e in entries)]
    dest.write_text("\n".join(lines) + "\n")


def parse_metalog(text: str, source: Path) -> dict[str, tuple[int, dict[str, str]]]:
    """path -> (line number, keywords), with `/set` defaults applied and `/unset` honoured."""
    defaults: dict[str, str] = {}
    result: dict[str, tuple[int, dict[str, str]]] = {}
    for number, line in _logical_lines(text):
        words = line.split()
        if words[0] == "/set":
            defaults.update(_keywords(words[1:], source, number))
        elif words[0] == "/unset":
            for key in words[1:]:
                defaults.pop(key, None)
        elif words[0] == "." or words[0].startswith("./"):
            keywords = {**defaults, **_keywords(words[1:], source, number)}
            result[_strip_dot(decode(words[0]))] = (number, keywords)
        else:
            raise DomusError(
                f"{source}:{number}: {words[0]!r} is not a full path starting with './'",
                hint="give a METALOG-style spec (as `build.sh -U` writes), one ./path per line",
            )
    return result


def _strip_dot(path: str) -> str:
    return ROOT if path == "." else path[2:].strip("/") or ROOT


def _keywords(words: list[str], source: Path, number: int) -> dict[str, str]:
    pairs = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep:
            raise DomusError(f"{source}:{number}: expected keyword=value, got {word!r}")
        pairs[key] = value
    return pairs


def _logical_lines(text: str) -> Iterable[tuple[int, str]]:
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = (pending + line).strip(), ""
        if line and not line.startswith("#"):
            yield start, line


def parse_device(text: str) -> tuple[int, int]:
    """An mtree `device=`: `FORMAT,major,minor` (as mtree -c writes it) or a NetBSD dev_t.

    Raises ValueError."""
    fields = text.split(",")
    if len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit():
        return int(fields[1]), int(fields[2])
    if len(fields) == 1:
        number = int(text, 0)
        # NetBSD's makedev(): minor bits below and above the major's
        return (number & 0x000FFF00) >> 8, ((number & 0xFFF00000) >> 12) | (number & 0xFF)
    raise ValueError(text)
