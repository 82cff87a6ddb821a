"""Make the shared root image's /etc/rc hand over to the domU's own /etc.

Every domU boots the same read-only root. Its /etc/rc must, before anything else reads /etc,
mount the domU's local image and null-mount /local/etc over /etc; the hook script that does
this (and then re-executes the domU's own, unpatched /etc/rc) is sourced just before rc
loads rc.subr, the first file rc reads from /etc besides itself.

Current NetBSD rc sources rc.subr inside an ``if [ -e ./rc.subr ]`` block, indented by a tab;
older ones have a bare ``. /etc/rc.subr`` line. The anchor is therefore any line that sources
/etc/rc.subr, whatever its indentation, and the hook gets that same indentation.
"""

from __future__ import annotations

import re

from tasks.run.errors import EditError

HOOK = "/etc/rc.pre-hooks"

# The lookahead, rather than \b, keeps ". /etc/rc.subr.local" from counting as the anchor.
_SOURCES_RC_SUBR = re.compile(r"^([ \t]*)\.[ \t]+/etc/rc\.subr(?=[ \t;#]|$)")
_SOURCES_HOOK = re.compile(r"^[ \t]*\.[ \t]+" + re.escape(HOOK) + r"[ \t]*$")


def _find_anchor(lines: list[str]) -> tuple[int, str]:
    """Index and indentation of the first line that sources /etc/rc.subr."""
    for index, line in enumerate(lines):
        match = _SOURCES_RC_SUBR.match(line.rstrip("\r\n"))
        if match:
            return index, match.group(1)
    raise EditError(
        "no line sourcing /etc/rc.subr (like '. /etc/rc.subr') found in /etc/rc",
        hint="give the root tree's own etc/rc from NetBSD's etc set; if rc was rewritten, "
        "source /etc/rc.pre-hooks by hand just before it loads rc.subr",
    )


def _is_hook(line: str) -> bool:
    return bool(_SOURCES_HOOK.match(line.rstrip("\r\n")))


def _line_ending(line: str) -> str:
    # Follow the anchor line's own ending so a CRLF file stays uniform.
    return line[len(line.rstrip("\r\n")) :] or "\n"


def add_pre_hook(rc: str) -> str:
    """Source HOOK, with the anchor's indentation, just before rc first sources rc.subr."""
    lines = rc.splitlines(keepends=True)
    index, indent = _find_anchor(lines)
    if index > 0 and _is_hook(lines[index - 1]):
        return rc
    lines.insert(index, f"{indent}. {HOOK}{_line_ending(lines[index])}")
    return "".join(lines)
