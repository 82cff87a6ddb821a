"""Leave init(8) running getty only on the Xen console in a domU.

A domU's one terminal is the Xen console (xencons). NetBSD reaches it through the
``console`` and ``constty`` entries, and which of the two carries the getty is the release's
choice: NetBSD 9 and later ship ``console`` off and ``constty`` on (constty follows whatever
the real console is), older releases the reverse. Both lines are kept as they ship.

Every other entry is switched off: the wscons screens (ttyE*) and the serial ports (tty0*,
dty*), and any USB or multiport serial line a site added, name hardware a domU does not have
(MAKEDEV's init target does not even make their nodes), so a getty there could only fail and
respawn.
"""

from __future__ import annotations

import re

from tasks.run.errors import EditError

CONSOLE_ENTRIES = ("console", "constty")

# A field is a double-quoted string (the getty command has spaces) or a run of non-blanks.
_FIELD = re.compile(r'"[^"]*"|[^\s"]+')
_FIRST_STATUS_FIELD = 3  # after name, getty and type
_STATUS = ("on", "off")


def _status_span(line: str) -> tuple[int, int] | None:
    """Where the status word of a ttys entry is, or None for a comment or blank line."""
    fields: list[re.Match[str]] = []
    for match in _FIELD.finditer(line):
        if match.group().startswith("#"):
            break
        fields.append(match)
    if not fields:
        return None
    for match in fields[_FIRST_STATUS_FIELD:]:
        if match.group() in _STATUS:
            return match.span()
    raise EditError(
        f"no on/off status field after the type field in /etc/ttys entry {line.strip()!r}",
        hint='fix the entry (ttys(5): name, "getty", type, on|off, flags) or delete it',
    )


def _name(line: str) -> str:
    return line.split(None, 1)[0]


def domu_ttys(text: str) -> str:
    """Set status ``off`` for every entry but ``console`` and ``constty``, kept as shipped."""
    lines = text.splitlines(keepends=True)
    console_on = False
    for index, line in enumerate(lines):
        span = _status_span(line)
        if span is None:
            continue
        if _name(line) in CONSOLE_ENTRIES:
            console_on = console_on or line[span[0] : span[1]] == "on"
            continue
        lines[index] = line[: span[0]] + "off" + line[span[1] :]
    if not console_on:
        raise EditError(
            "neither 'console' nor 'constty' is on in /etc/ttys: "
            "the domU would have no login on its Xen console",
            hint="turn on one of them, as NetBSD ships it: "
            "'constty \"/usr/libexec/getty Pc\" vt100 on secure'",
        )
    return "".join(lines)
