"""Leave the Xen console as the only terminal init(8) runs a getty on in a domU.

A domU has no wscons screens and no serial ports, only the Xen console, which NetBSD reaches
as ``console``; a getty on any other line could only fail and respawn. The ``console`` entry
is therefore switched on and every other one off. NetBSD 9's ttys has ``console`` off and
``constty`` on, older ones the reverse; both shapes are handled.
"""

from __future__ import annotations

import re

from tasks.errors import EditError

CONSOLE = "console"

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


def console_only(text: str) -> str:
    """Set status ``on`` for the console entry and ``off`` for every other entry."""
    lines = text.splitlines(keepends=True)
    seen_console = False
    for index, line in enumerate(lines):
        span = _status_span(line)
        if span is None:
            continue
        is_console = _name(line) == CONSOLE
        seen_console = seen_console or is_console
        status = "on" if is_console else "off"
        lines[index] = line[: span[0]] + status + line[span[1] :]
    if not seen_console:
        raise EditError(
            "no 'console' entry found in /etc/ttys",
            hint="add a line such as 'console \"/usr/libexec/getty Pc\" vt100 on secure'",
        )
    return "".join(lines)
