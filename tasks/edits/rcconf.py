"""Set the variables domus manages in a domU's /etc/rc.conf, keeping every other line.

rc.conf belongs to the domU: its administrator edits it, and rc.conf(5) is sourced by sh, so
a later assignment wins. Rewriting the whole file would lose their changes; appending would
leave an earlier assignment that looks authoritative but is not. Each managed variable
therefore gets its value on every line that assigns it, and only a variable with no such line
is appended, under one marker comment. Lines such as ``export name=...`` or
``: ${name:=...}`` are not assignments of this shape and are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from tasks.run.errors import EditError

MARKER = "# Managed by domus: set in the site configuration."

_BARE = re.compile(r"[A-Za-z0-9_./:,+=@%-]+")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ESCAPED = re.compile(r'([\\"$`])')
_WORD_ENDS = " \t\r\n;&|"
_EXPANSIONS = {"(": ")", "{": "}"}


def shell_quote(value: str) -> str:
    """The value as one sh word: bare when that is safe, else double-quoted and escaped."""
    if "\n" in value or "\r" in value:
        raise ValueError(f"rc.conf values are single lines, got {value!r}")
    if _BARE.fullmatch(value):
        return value
    return '"' + _ESCAPED.sub(r"\\\1", value) + '"'


def _word_end(line: str, start: int) -> int | None:
    """Index just past the sh word starting at start, or None if it goes on past the line."""
    index: int | None = start
    while index is not None and index < len(line) and line[index] not in _WORD_ENDS:
        index = _token_end(line, index)
    return index


def _token_end(line: str, index: int) -> int | None:
    """Index just past the quoted or escaped piece of a word that starts at index."""
    char, after = line[index], line[index + 1 : index + 2]
    if char == "\\":
        # A backslash at the end of the line continues the value on the next one.
        return None if after in ("", "\r", "\n") else index + 2
    if char == "'":
        close = line.find("'", index + 1)
        return None if close < 0 else close + 1
    if char == '"':
        return _closing(line, index + 1, '"')
    if char == "`":
        return _closing(line, index + 1, "`")
    if char == "$" and after in _EXPANSIONS:
        return _closing(line, index + 2, _EXPANSIONS[after], opener=after)
    return index + 1


def _closing(line: str, index: int, closer: str, opener: str = "") -> int | None:
    """Index just past the closer that ends a piece opened before index, nesting opener."""
    depth = 1
    while index < len(line):
        char = line[index]
        if char == "\\":
            index += 2
            continue
        if char == closer:
            depth -= 1
            if depth == 0:
                return index + 1
        elif opener and char == opener:
            depth += 1
        index += 1
    return None


def _assignment(name: str) -> re.Pattern[str]:
    return re.compile(rf"^[ \t]*{re.escape(name)}=")


def _set_line(line: str, start: int, name: str, word: str) -> str:
    end = _word_end(line, start)
    if end is None:
        raise EditError(
            f"the value of {name} in rc.conf goes on past its line: {line.strip()!r}",
            hint=f"put the value of {name} on one line, or delete the line for domus to add",
        )
    # Whatever follows the value (a comment, "; other=...") is the administrator's: keep it.
    return line[:start] + word + line[end:]


def _check_names(variables: Mapping[str, str]) -> None:
    bad = [name for name in variables if not _NAME.fullmatch(name)]
    if bad:
        raise ValueError(f"not sh variable names: {', '.join(repr(name) for name in bad)}")


def set_rc_vars(text: str, variables: Mapping[str, str]) -> str:
    """Give each variable its value in rc.conf text; append the ones it never assigns."""
    _check_names(variables)
    lines = text.splitlines(keepends=True)
    missing: list[str] = []
    for name, value in variables.items():
        word = shell_quote(value)
        pattern = _assignment(name)
        found = False
        for index, line in enumerate(lines):
            match = pattern.match(line)
            if match:
                lines[index] = _set_line(line, match.end(), name, word)
                found = True
        if not found:
            missing.append(f"{name}={word}\n")
    return _append(lines, missing, final_newline=text.endswith("\n") or not text)


def _append(lines: list[str], additions: list[str], *, final_newline: bool) -> str:
    if not additions:
        return "".join(lines)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    if not any(line.rstrip("\r\n") == MARKER for line in lines):
        lines.append(MARKER + "\n")
    result = "".join(lines + additions)
    return result if final_newline else result[:-1]
