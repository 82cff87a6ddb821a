"""A package's own setup in a domU: the users, groups, directories and configuration files its
+INSTALL script would make, read from the script's data lines and never by running it.

pkgsrc's install scripts (mk/pkginstall/usergroup, dirs and files) act on lines of their own:

    # GROUP: group[:gid]
    # USER: user:group[:[uid][:[descr][:[home][:shell]]]]
    # DIR: path flags [mode [owner [group]]]           (flag m: make it)
    # FILE: path flags example [mode [owner [group]]]  (flag c: copy the example; r: rc.d script)

A relative path is below the prefix, /usr/pkg. What domus does with them, per domU, is what
pkg_add would do on a fresh NetBSD with PKG_RCD_SCRIPTS=yes: the groups and users added as
groupadd(8) and useradd(8) add them (a given id, else the next free one from 1000), the
directories made, the examples copied once into place.

The numbers are the package set's, not a domU's: one pkg.img is shared by every domU that uses
the same packages, and its files carry the numbers of @owner and @group. So they are given from
NetBSD's standard accounts and the packages alone, in install order (each script's lines
sorted, groups before users, as `sort -u` feeds them to the script); every domU with that
package set gets the same ones. A domU that already has one of these names with another number,
or the number under another name, is refused rather than changed.

PKG_SYSCONFDIR, /usr/pkg/etc, is where the copied configuration lives, and pkg.img is shared
and read-only: in pkg.img it is a symbolic link to /etc/pkg, a directory of each domU's
local.img. Files a package itself installs below /usr/pkg/etc are carried there too, as copies
made once.
"""

from __future__ import annotations

import functools
import re
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tasks.pkgsrc.packages import PREFIX, file_version, open_package, plan, read_packing_list
from tasks.run.errors import DomusError
from tasks.site import PkgSource

SYSCONFDIR = f"{PREFIX}/etc"  # pkgsrc's default PKG_SYSCONFDIR
LOCAL_SYSCONFDIR = "etc/pkg"  # where /usr/pkg/etc leads, in local.img: the domU's /etc/pkg
# What of the domU lies on local.img: the null mounts of the boot hook, the directories
# tasks.recipes.local copies (MUTABLE_DIRS; not imported: this module is read as doit loads).
LOCAL_TOPS = ("etc", "tmp", "var")
# useradd(8) and groupadd(8) without -u or -g: the lowest free id from 1000 to 60000.
FIRST_ID, LAST_ID = 1000, 60000
# pkgsrc's _PKG_USER_HOME and _PKG_USER_SHELL (NOLOGIN) on NetBSD.
USER_HOME, USER_SHELL = "/nonexistent", "/sbin/nologin"

_LINE = re.compile(r"# (USER|GROUP|DIR|FILE): (.*)")


@dataclass(frozen=True)
class Group:
    name: str
    gid: int


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int
    gecos: str
    home: str
    shell: str


@dataclass(frozen=True)
class SetupDir:
    path: str  # absolute, in the domU
    mode: int | None
    uid: int
    gid: int


@dataclass(frozen=True)
class SetupFile:
    path: str  # absolute, in the domU
    package: Path  # the package file holding the example
    example: str  # the example's member name (relative to /usr/pkg)
    mode: int | None  # None: the example's, as cp(1) gives it
    uid: int
    gid: int


@dataclass(frozen=True)
class PackageSetup:
    """The setup a package set asks of every domU that uses it."""

    groups: tuple[Group, ...] = ()
    users: tuple[User, ...] = ()
    dirs: tuple[SetupDir, ...] = ()
    files: tuple[SetupFile, ...] = ()


# -- reading +INSTALL -------------------------------------------------------------------------


def data_lines(text: str) -> dict[str, list[str]]:
    """The script's data lines by kind, each kind sorted and unique as `sort -u` gives them."""
    found: dict[str, set[str]] = {"USER": set(), "GROUP": set(), "DIR": set(), "FILE": set()}
    for line in text.splitlines():
        match = _LINE.fullmatch(line)
        if match and match[2].strip():
            found[match[1]].add(match[2].strip())  # `read` drops the blanks at either end
    return {kind: sorted(lines) for kind, lines in found.items()}


def read_install_script(path: Path) -> str:
    """The package's +INSTALL, from its leading metadata members ("" without one)."""
    return _install_script(path, *file_version(path))


@functools.lru_cache(maxsize=4096)
def _install_script(path: Path, mtime_ns: int, size: int) -> str:
    with open_package(path) as archive:
        try:
            for info in archive:
                if not info.name.startswith("+") or "/" in info.name:
                    return ""  # the metadata is over
                if info.name == "+INSTALL":
                    stream = archive.extractfile(info)
                    return stream.read().decode(errors="replace") if stream else ""
        except (OSError, tarfile.TarError, EOFError) as error:
            raise DomusError(f"cannot read package {path}: {error}") from None
    return ""


def absolute(path: str) -> str:
    """A data line's path: a relative one is below the prefix."""
    return path if path.startswith("/") else f"{PREFIX}/{path}"


def local_path(path: str) -> str | None:
    """Where the domU's `path` lies on its local.img, or None when it is not there."""
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts or not parts:
        return None
    if path == SYSCONFDIR or path.startswith(SYSCONFDIR + "/"):
        return "/".join([LOCAL_SYSCONFDIR, *parts[3:]])
    return "/".join(parts) if parts[0] in LOCAL_TOPS else None


def pkg_path(path: str) -> str | None:
    """Where the domU's `path` lies in pkg.img (outside /usr/pkg/etc), or None."""
    if path.startswith(PREFIX + "/") and local_path(path) is None:
        rest = path[len(PREFIX) + 1 :]
        return None if ".." in rest.split("/") else rest
    return None


# -- users and groups -------------------------------------------------------------------------


class _Ids:
    """Names and numbers taken so far, and the next free number as useradd finds it."""

    def __init__(self, what: str, known: dict[str, int]) -> None:
        self.what = what
        self.by_name = dict(known)
        self.taken = set(known.values())

    def add(self, name: str, wanted: int | None, where: str) -> int | None:
        """The number `name` gets; None when it is one the table already had."""
        if name in self.by_name:
            return None
        if wanted is None:
            wanted = next((n for n in range(FIRST_ID, LAST_ID + 1) if n not in self.taken), None)
            if wanted is None:
                raise DomusError(f"{where}: no free {self.what} id left for {name}")
        elif wanted in self.taken:
            other = next(n for n, i in self.by_name.items() if i == wanted)
            raise DomusError(
                f"{where}: {self.what} {name} asks for id {wanted}, which is {other}'s",
                hint="two packages of one set cannot give one id to two names; leave one out",
            )
        self.by_name[name] = wanted
        self.taken.add(wanted)
        return wanted


def _number(text: str, where: str, what: str) -> int | None:
    if not text:
        return None
    if not text.isdigit():
        raise DomusError(f"{where}: {what} {text!r} is not a number")
    return int(text)


def _mode(text: str, where: str) -> int | None:
    if not text:
        return None
    if not re.fullmatch(r"[0-7]{1,4}", text):
        raise DomusError(f"{where}: mode {text!r} is not an octal mode")
    return int(text, 8)


def _accounts(
    scripts: Sequence[tuple[str, str]], users: _Ids, groups: _Ids
) -> tuple[list[Group], list[User]]:
    new_groups: list[Group] = []
    new_users: list[User] = []
    for package, text in scripts:
        lines = data_lines(text)
        base = package.rpartition("-")[0]
        for line in lines["GROUP"]:
            where = f"{package}: +INSTALL '# GROUP: {line}'"
            name, _, gid = line.partition(":")
            number = groups.add(name, _number(gid.split(":")[0], where, "gid"), where)
            if number is not None:
                new_groups.append(Group(name, number))
        for line in lines["USER"]:
            where = f"{package}: +INSTALL '# USER: {line}'"
            name, group, uid, descr, home, shell = (line.split(":") + [""] * 5)[:6]
            if not name or not group:
                raise DomusError(f"{where}: a user line names the user and its group")
            if group not in groups.by_name:
                raise DomusError(
                    f"{where}: group {group} is neither NetBSD's nor made by a package of the set",
                    hint="the package's user needs its group; add the package that makes it",
                )
            number = users.add(name, _number(uid, where, "uid"), where)
            if number is not None:
                gecos = descr or (f"{name} user" if name == base else f"{base} {name} user")
                new_users.append(
                    User(
                        name,
                        number,
                        groups.by_name[group],
                        gecos,
                        home or USER_HOME,
                        shell or USER_SHELL,
                    )
                )
    return new_groups, new_users


def _owner(name: str, table: _Ids, where: str) -> int:
    if not name:
        return 0  # made by root, as the script runs
    if name.isdigit():
        return int(name)
    if name not in table.by_name:
        raise DomusError(f"{where}: {table.what} {name} is neither NetBSD's nor the set's")
    return table.by_name[name]


# -- the whole set ----------------------------------------------------------------------------


def account_tables(setup: PackageSetup) -> tuple[dict[str, int], dict[str, int]]:
    """Every user and group name a package's file may be owned by, with its number."""
    from tasks.pkgsrc.install import GROUPS, USERS

    users = {**USERS, **{user.name: user.uid for user in setup.users}}
    groups = {**GROUPS, **{group.name: group.gid for group in setup.groups}}
    return users, groups


def package_setup(packages: Sequence[Path]) -> PackageSetup:
    """The setup the site's `packages` (and the dependencies found for them) ask for."""
    # NetBSD's standard accounts are the installer's table, which an action alone loads.
    from tasks.pkgsrc.install import GROUPS, USERS

    planned = plan(packages)
    scripts = [(p.name, read_install_script(p.path)) for p in planned]
    users, groups = _Ids("user", USERS), _Ids("group", GROUPS)
    new_groups, new_users = _accounts(scripts, users, groups)
    dirs: dict[str, SetupDir] = {}
    files: dict[str, SetupFile] = {}
    for entry, (name, text) in zip(planned, scripts, strict=True):
        lines = data_lines(text)
        for line in lines["DIR"]:
            where = f"{name}: +INSTALL '# DIR: {line}'"
            path, flags, mode, owner, group = (line.split(None, 4) + [""] * 4)[:5]
            if "m" in flags:
                dirs.setdefault(
                    absolute(path),
                    SetupDir(
                        absolute(path),
                        _mode(mode, where),
                        _owner(owner, users, where),
                        _owner(group, groups, where),
                    ),
                )
        for line in lines["FILE"]:
            where = f"{name}: +INSTALL '# FILE: {line}'"
            path, flags, example, mode, owner, group = (line.split(None, 5) + [""] * 5)[:6]
            example = absolute(example)
            if "c" not in flags or not example.startswith(PREFIX + "/"):
                continue
            files.setdefault(
                absolute(path),
                SetupFile(
                    absolute(path),
                    entry.path,
                    example[len(PREFIX) + 1 :],
                    _mode(mode, where),
                    _owner(owner, users, where),
                    _owner(group, groups, where),
                ),
            )
        # What a package installs below /usr/pkg/etc itself goes to each domU's /etc/pkg.
        plist = read_packing_list(entry.path)
        for directory in plist.dirs:
            if local_path(absolute(directory)) is not None:
                dirs.setdefault(absolute(directory), SetupDir(absolute(directory), None, 0, 0))
        for file in plist.files:
            if local_path(absolute(file.path)) is not None:
                files.setdefault(
                    absolute(file.path),
                    SetupFile(
                        absolute(file.path),
                        entry.path,
                        file.path,
                        None,  # the archive's mode, as pkg_add leaves it (@mode is not applied)
                        _owner(file.owner or "", users, name),
                        _owner(file.group or "", groups, name),
                    ),
                )
    return PackageSetup(
        tuple(new_groups), tuple(new_users), tuple(dirs.values()), tuple(files.values())
    )


def example(file: SetupFile) -> tuple[bytes, int]:
    """The example's content, and the mode the copy gets: the line's, else the example's as
    cp(1) leaves it for root (umask 022, no set-id bits)."""
    try:
        with open_package(file.package) as archive:
            for info in archive:
                if info.name.removeprefix("./") == file.example and info.isreg():
                    stream = archive.extractfile(info)
                    assert stream is not None  # a regular member has contents
                    mode = file.mode if file.mode is not None else info.mode & 0o755
                    return stream.read(), mode
    except (OSError, tarfile.TarError, EOFError) as error:
        raise DomusError(f"cannot read package {file.package}: {error}") from None
    raise DomusError(
        f"{file.package.name}: {file.path} is copied from {PREFIX}/{file.example}, which is not "
        "a file of the package",
        hint="the package's +INSTALL and its files disagree; rebuild the package",
    )


def setup_inputs(source: PkgSource) -> dict[str, dict[str, list[str]]] | None:
    """What a domU's setup is made from, without making it (no package is unpacked): per
    package, its +INSTALL data lines and what it installs below /usr/pkg/etc. The numbers
    follow from these alone, so local.img's inputs record them."""
    if source.tree is not None or not source.packages:
        return None
    return _setup_inputs(source.packages)


# Per run: many domUs share one package list, and the files do not change while doit loads.
@functools.lru_cache(maxsize=256)
def _setup_inputs(packages: tuple[Path, ...]) -> dict[str, dict[str, list[str]]]:
    inputs: dict[str, dict[str, list[str]]] = {}
    for entry in plan(packages):
        plist = read_packing_list(entry.path)
        sysconf = [d for d in plist.dirs if local_path(absolute(d)) is not None]
        sysconf += [
            f"{f.path} {f.owner} {f.group}"
            for f in plist.files
            if local_path(absolute(f.path)) is not None
        ]
        inputs[entry.name] = {**data_lines(read_install_script(entry.path)), "sysconf": sysconf}
    return inputs


def setup_of(source: PkgSource) -> PackageSetup | None:
    """The setup a domU's pkg.img source asks of it: None unless it is a package set (a
    ready-made tree is taken as it is)."""
    if source.tree is not None or not source.packages:
        return None
    return package_setup(source.packages)
