"""Names, link targets and file contents an image's owner chose, made safe for the
operator's terminal: an escape sequence in a domU's file name must not reach it.

Control characters (C0, DEL, C1), bytes that are not UTF-8 and the backslash itself are
written as NetBSD's `ls -b` writes them: a backslash and three octal digits per byte
(`\\033`), and `\\\\`. Octal, not `ls -q`'s `?`: two names differing in a control character
stay two names, and the bytes can be typed back (`printf '\\033'`, `$'\\033'` in sh).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable, Iterator

# What a terminal acts on (unicodedata's Cc: C0, DEL, C1), the surrogates that stand for
# bytes that are not UTF-8 (surrogateescape), and the backslash that starts an escape.
_UNSAFE = [*range(0x20), *range(0x7F, 0xA0), *range(0xDC80, 0xDD00), ord("\\")]
_ESCAPES = {
    char: "".join(f"\\{byte:03o}" for byte in char.encode("utf-8", "surrogateescape"))
    for char in map(chr, _UNSAFE)
} | {"\\": "\\\\"}
_NAME = re.compile("([\x00-\x1f\x7f-\x9f\\\\\udc80-\udcff])")
# a file's text keeps its newlines, tabs and backslashes, to read as the file does
_CONTENT = re.compile("([\x00-\x08\x0b-\x1f\x7f-\x9f\udc80-\udcff])")


def _escape(pattern: re.Pattern[str], text: str) -> str:
    # split, not sub: no Python call per character, which a binary file has millions of
    parts = pattern.split(text)
    parts[1::2] = map(_ESCAPES.__getitem__, parts[1::2])
    return "".join(parts)


def escaped(text: str) -> str:
    """A name or link target (bytes that are not UTF-8 as surrogateescape), as `ls -b`
    shows it."""
    return _escape(_NAME, text)


def escaped_content(text: str) -> str:
    """A file's text for a terminal: escaped as a name is, but newlines, tabs and
    backslashes kept."""
    return _escape(_CONTENT, text)


def for_terminal(data: bytes) -> bytes:
    """A file's bytes as `./domus show` writes them to a terminal."""
    return escaped_content(data.decode("utf-8", "surrogateescape")).encode()


def for_terminal_chunks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """for_terminal of a file read a chunk at a time: a character cut between two chunks
    is decoded whole."""
    decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
    for chunk in chunks:
        yield escaped_content(decoder.decode(chunk)).encode()
    yield escaped_content(decoder.decode(b"", final=True)).encode()
