"""Add a package set's users and groups to a domU's /etc/group, /etc/master.passwd and
/etc/passwd, as groupadd(8) and useradd(8) append them, keeping every line already there.

The files are the domU's: an entry it already has is never changed. The numbers are the
package set's (they own files in the shared pkg.img), so a name the domU has with another
number, or a number it has under another name, is refused: the files in pkg.img would then
belong to someone else in that domU. pwd.db and spwd.db are made from master.passwd at boot.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tasks.run.errors import EditError

if TYPE_CHECKING:
    from tasks.pkgsrc.setup import Group, User

HINT = (
    "give the package's account a fixed id in the package (PKG_UID.<user>, PKG_GID.<group>) "
    "that is free in every domU using it, or renumber the domU's own account"
)


def _entries(text: str) -> dict[str, int]:
    """name -> id (the third field) of each entry; NIS `+`/`-` lines and junk are not entries."""
    found: dict[str, int] = {}
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) > 2 and fields[0][:1] not in ("", "+", "-", "#") and fields[2].isdigit():
            found.setdefault(fields[0], int(fields[2]))
    return found


def _append(text: str, lines: Sequence[str]) -> str:
    if not lines:
        return text
    if text and not text.endswith("\n"):
        text += "\n"
    return text + "".join(line + "\n" for line in lines)


def _missing(text: str, wanted: Sequence[tuple[str, int]], what: str) -> list[str]:
    """The names of `wanted` the file lacks; an EditError for a clash with what it has."""
    have = _entries(text)
    names = {number: name for name, number in reversed(list(have.items()))}
    missing = []
    for name, number in wanted:
        if name in have:
            if have[name] != number:
                raise EditError(
                    f"{what} {name} is {have[name]} here, but the packages' files are owned "
                    f"by {what} id {number}",
                    hint=HINT,
                )
        elif number in names:
            raise EditError(
                f"{what} id {number}, which the packages give to {name}, is {names[number]}'s here",
                hint=HINT,
            )
        else:
            missing.append(name)
    return missing


def add_groups(text: str, groups: Sequence[Group]) -> str:
    """/etc/group with the missing `groups`, as groupadd writes them: `name:*:gid:`."""
    missing = _missing(text, [(g.name, g.gid) for g in groups], "group")
    return _append(text, [f"{g.name}:*:{g.gid}:" for g in groups if g.name in missing])


def add_master_users(text: str, users: Sequence[User]) -> str:
    """/etc/master.passwd with the missing `users`, as useradd writes them: no password
    (`*`), no login class, no change or expiry time."""
    missing = _missing(text, [(u.name, u.uid) for u in users], "user")
    return _append(
        text,
        [
            f"{u.name}:*:{u.uid}:{u.gid}::0:0:{u.gecos}:{u.home}:{u.shell}"
            for u in users
            if u.name in missing
        ],
    )


def add_passwd_users(text: str, users: Sequence[User]) -> str:
    """/etc/passwd with the missing `users`, as pwd_mkdb -p writes it from master.passwd."""
    missing = _missing(text, [(u.name, u.uid) for u in users], "user")
    return _append(
        text,
        [
            f"{u.name}:*:{u.uid}:{u.gid}:{u.gecos}:{u.home}:{u.shell}"
            for u in users
            if u.name in missing
        ],
    )
