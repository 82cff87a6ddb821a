"""Names, link targets and file contents an image's owner chose, made safe for the
operator's terminal: an escape sequence in a domU's file name must not reach it.

Control characters (C0, DEL, C1), bytes that are not UTF-8 and the backslash itself are
written as NetBSD's `ls -b` writes them: a backslash and three octal digits per byte
(`\\033`), and `\\\\`. Octal, not `ls -q`'s `?`: two names differing in a control character
stay two names, and the bytes can be typed back (`printf '\\033'`, `$'\\033'` in sh).
"""

from __future__ import annotations

import re

# what a terminal acts on (unicodedata's Cc), the backslash, and the surrogates that
# stand for undecodable bytes (surrogateescape)
_UNSAFE = "\x00-\x1f\x7f-\x9f\\\\\udc80-\udcff"
_KEPT_IN_CONTENT = "\n\t\\"


def _octal(match: re.Match[str]) -> str:
    char = match.group()
    if char == "\\":
        return "\\\\"
    data = char.encode("utf-8", "surrogateescape")
    return "".join(f"\\{byte:03o}" for byte in data)


def _pattern(keep: str) -> re.Pattern[str]:
    kept = "".join(re.escape(c) for c in keep)
    return re.compile(f"(?![{kept}])[{_UNSAFE}]" if keep else f"[{_UNSAFE}]")


_NAME = _pattern("")
_CONTENT = _pattern(_KEPT_IN_CONTENT)


def escaped(text: str) -> str:
    """A name or link target (non-UTF-8 bytes as surrogateescape), as `ls -b` shows it."""
    return _NAME.sub(_octal, text)


def escaped_content(text: str) -> str:
    """A file's text for a terminal: escaped as a name is, but newlines, tabs and
    backslashes kept, so that it reads as the file does."""
    return _CONTENT.sub(_octal, text)


def for_terminal(data: bytes) -> bytes:
    """A file's bytes as `./domus show` writes them to a terminal."""
    return escaped_content(data.decode("utf-8", "surrogateescape")).encode()
