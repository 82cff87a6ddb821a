"""Compose /dev/MAKEDEV from NetBSD's MAKEDEV.tmpl and a machine's MAKEDEV.conf, as NetBSD's
build does (etc/MAKEDEV.awk), so the tests patch the file a release installs from the real
sources in ../shared/netbsd-fixtures. domus itself only reads the composed file from the sets.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from tasks.run.errors import EditError

_MARKER = re.compile(r"%([A-Za-z_][A-Za-z0-9_]*)%")
_MD_DEVICES = "%MD_DEVICES%"
_MI_BEGIN = "%MI_DEVICES_BEGIN%"
_MI_END = "%MI_DEVICES_END%"
_ARM_LABEL = re.compile(r"[a-z].*\)")  # MAKEDEV.awk's test for the first line of an arm


def _machine_part(machine_conf: str) -> list[str]:
    # MAKEDEV.awk skips the conf's RCS Id line and the blank line after it.
    lines = machine_conf.splitlines(keepends=True)
    if lines and lines[0].lstrip("# \t").startswith("$NetBSD"):
        lines = lines[1:]
        if lines and not lines[0].strip():
            lines = lines[1:]
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return lines


def compose_makedev(
    template: str, machine_conf: str, *, values: Mapping[str, str] | None = None
) -> str:
    """Build /dev/MAKEDEV from MAKEDEV.tmpl and a machine's MAKEDEV.conf.

    The ``%MD_DEVICES%`` line becomes the machine part, the ``%MI_DEVICES_BEGIN%`` and
    ``%MI_DEVICES_END%`` marker lines are dropped, and so is the sentinel arm just before the
    end marker (``midevend)``, a label with no ``;;``), which NetBSD's MAKEDEV.awk never
    prints: left in, the script does not parse. The other markers (``%MKDISK%``,
    ``%DISKMINOROFFSET%``, ``%RAWDISK_OFF%``, ``%RAWDISK_NAME%``, ``%CONSOLE_CMAJOR%``,
    ``%uid_NAME%``, ``%gid_NAME%``, ``%DEV_chr%``, ``%DEV_blk%``) come from the kernel's majors
    files, disklabel.h and the passwd/group files, which are not at hand here: each is replaced
    by ``values[NAME]`` when given and otherwise left as it is. The shell still parses such a
    file, but making nodes with it needs the values. NetBSD's build also drops the MI arms whose
    majors the port lacks and some comment blocks; that is not reproduced.
    """
    lines = template.splitlines(keepends=True)
    anchors = [i for i, line in enumerate(lines) if line.strip() == _MD_DEVICES]
    if not anchors:
        raise EditError(
            f"no {_MD_DEVICES} line found in the MAKEDEV template",
            hint="give NetBSD's etc/MAKEDEV.tmpl; an already composed MAKEDEV needs no composing",
        )
    index = anchors[0]
    lines[index : index + 1] = _machine_part(machine_conf)
    lines = _drop_mi_markers(lines)
    return _fill_markers("".join(lines), values or {})


def _drop_mi_markers(lines: list[str]) -> list[str]:
    kept: list[str] = []
    region = 0
    for line in lines:
        marker = line.strip()
        if marker == _MI_BEGIN:
            region = len(kept)
        elif marker == _MI_END:
            # MAKEDEV.awk holds each MI arm back until the next label and never prints the
            # one it still holds at the end marker: the sentinel label above the marker.
            del kept[_last_label(kept, region) :]
        else:
            kept.append(line)
    return kept


def _last_label(lines: list[str], region: int) -> int:
    for index in range(len(lines) - 1, region - 1, -1):
        if _ARM_LABEL.fullmatch(lines[index].rstrip("\r\n")):
            return index
    return region


def _fill_markers(text: str, values: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        return values.get(match.group(1), match.group(0))

    return _MARKER.sub(replace, text)
