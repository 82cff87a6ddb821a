"""Install pkgsrc binary packages into a domU's pkg.img tree, as pkg_add(1) would.

pkg.img is mounted at /usr/pkg, so the tree's top is /usr/pkg and the package database is its
pkgdb/ (pkg_install's default PKG_DBDIR). pkg_add itself cannot build the image: it runs on
NetBSD, as root, against the live system. What it does to the file system is simple enough to
repeat here. A binary package is a tar archive whose leading `+*` members are metadata, the
first of them the packing list +CONTENTS, which names every other member. Installing one is:
install first the dependencies it lacks, check that it takes no other package's file, put its
files under the tree with the modes and owners the packing list gives, copy its metadata to
pkgdb/<name>/, add its name to +REQUIRED_BY of each dependency, mark it `automatic=yes` in its
+INSTALLED_INFO if it came in only as a dependency, and record its files in pkgdb.byfile.db.
pkg_info, pkg_delete and pkg_admin in the domU then see the packages as if pkg_add had
installed them.

A dependency no package installed before provides is taken from the packages the site names,
else found as pkg_add finds it: the newest matching file beside the named package.

Not done, on purpose:
- +INSTALL scripts and @exec lines are not run (they are logged). They are NetBSD commands,
  and what they do (add users and groups, copy example configuration into place) belongs to
  the domU, not to an image built on another host.

File contents are extracted once per package file into a cache and the tree's files are hard
links into it, so rebuilding an image does not extract the packages again.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import logging
import operator
import os
import re
import shutil
import tarfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from tasks.btree_db import write_btree
from tasks.errors import DomusError
from tasks.tree import ROOT, Tree, parent_of

log = logging.getLogger(__name__)

PREFIX = "/usr/pkg"  # the tree's top: where the domU mounts pkg.img
PKGDB = "pkgdb"  # PKG_DBDIR (/usr/pkg/pkgdb), relative to the top
BYFILE = f"{PKGDB}/pkgdb.byfile.db"  # pkg_install's file-to-package index (lib/pkgdb.c)
MAX_PATH = 1024  # MaxPathSize: pkgdb_store refuses a longer key or value (with its NUL)
# pkg_add finds a missing dependency among the files beside the package it was named with
# whose names end so (strip_suffix in pkg_install's lib/pkg_io.c: not .txz).
BESIDE_SUFFIXES = (".tgz", ".tbz")

# The modes pkg_add gives the metadata files it copies to the package database
# (pkg_meta_descriptors in pkg_install's add/perform.c); other `+*` files get 0444.
META_MODES = {
    "+CONTENTS": 0o644,
    "+COMMENT": 0o444,
    "+DESC": 0o444,
    "+INSTALL": 0o555,
    "+DEINSTALL": 0o555,
    "+DISPLAY": 0o444,
    "+MTREE_DIRS": 0o444,
    "+BUILD_VERSION": 0o444,
    "+BUILD_INFO": 0o444,
    "+SIZE_PKG": 0o444,
    "+SIZE_ALL": 0o444,
    "+PRESERVE": 0o444,
    "+REQUIRED_BY": 0o644,
    "+INSTALLED_INFO": 0o644,
}
REQUIRED_META = ("+CONTENTS", "+COMMENT", "+DESC")  # pkg_add refuses a package without them

# NetBSD's standard users and groups (src/etc/master.passwd and src/etc/group). The image is
# built on another host, whose own users mean nothing in the domU.
USERS = {
    "root": 0, "toor": 0, "daemon": 1, "operator": 2, "bin": 3, "games": 7, "postfix": 12,
    "named": 14, "ntpd": 15, "sshd": 16, "_pflogd": 18, "_rwhod": 19, "uucp": 66,
    "nobody": 32767,
}  # fmt: skip
GROUPS = {
    "wheel": 0, "daemon": 1, "kmem": 2, "sys": 3, "tty": 4, "operator": 5, "mail": 6, "bin": 7,
    "wsrc": 9, "maildrop": 11, "postfix": 12, "games": 13, "named": 14, "ntpd": 15, "sshd": 16,
    "_pflogd": 18, "_rwhod": 19, "staff": 20, "_proxy": 21, "_timedc": 22, "_sdpd": 23,
    "_httpd": 24, "_mdnsd": 25, "_tests": 26, "_tcpdump": 27, "_tss": 28, "_gpio": 29,
    "_rtadvd": 30, "guest": 31, "_unbound": 32, "_nsd": 33, "nvmm": 34, "nobody": 39,
    "utmp": 45, "authpf": 72, "users": 100, "dialer": 117, "nogroup": 32766,
}  # fmt: skip

# Packing-list commands that change nothing at install time: @src and @blddep matter to the
# build, @dirrm, @unexec and @option (preserve) to pkg_delete, @display to pkg_add's output.
_INERT = {"src", "blddep", "dirrm", "unexec", "option", "display", "comment"}
_COMMAND = re.compile(r"@(\w+)\s*(.*)")
_MD5 = "MD5:"


@dataclass(frozen=True)
class File:
    """A file line of the packing list, with the @mode, @owner and @group in force for it."""

    path: str  # relative to the prefix; also the archive member's name
    mode: int | None = None
    owner: str | None = None
    group: str | None = None
    md5: str | None = None  # from the `@comment MD5:` line after it


@dataclass(frozen=True)
class PackingList:
    name: str
    prefix: str = PREFIX  # the first @cwd: pkg_add's prefix for the package's paths
    files: tuple[File, ...] = ()
    dirs: tuple[str, ...] = ()  # @pkgdir: directories the package owns even when empty
    depends: tuple[str, ...] = ()  # @pkgdep patterns
    conflicts: tuple[str, ...] = ()  # @pkgcfl patterns
    commands: tuple[str, ...] = ()  # @exec, which pkg_add runs and domus does not


@dataclass(frozen=True)
class Member:
    """An archive member outside the metadata."""

    name: str
    type: str  # "file", "link" (symlink) or "hardlink"
    mode: int
    uid: int
    gid: int
    uname: str
    gname: str
    target: str | None = None  # symlink target, or the member a hard link names


@dataclass(frozen=True)
class Package:
    path: Path
    digest: str  # sha256 of the package file: names its extracted contents in the cache
    plist: PackingList
    meta: dict[str, bytes] = field(repr=False)  # `+*` files, in archive order
    members: dict[str, Member] = field(repr=False)

    @property
    def name(self) -> str:
        return self.plist.name


# -- versions and dependency patterns -------------------------------------------------------

# pkg_install's dewey.c, in its order: numbers; words that stand for numbers; "nb" + the pkgsrc
# revision, which only breaks ties; any other letter as ".N" (1.2a is 1.2.0.1); the rest skipped.
_VERSION_TOKEN = re.compile(r"(\d+)|(alpha|beta|pre|rc|pl|_|\.)|nb(\d*)|([a-z])|.", re.I | re.A)
_WORDS = {"alpha": -3, "beta": -2, "pre": -1, "rc": -1, "pl": 0, "_": 0, ".": 0}
_TESTS: dict[str, Callable[[int, int], bool]] = {
    "<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt,
    "==": operator.eq, "!=": operator.ne,
}  # fmt: skip


def _dewey(version: str) -> tuple[list[int], int]:
    numbers: list[int] = []
    revision = 0
    for match in _VERSION_TOKEN.finditer(version):
        number, word, nb, letter = match.groups()
        if number is not None:
            numbers.append(int(number))
        elif word is not None:
            numbers.append(_WORDS[word.lower()])
        elif nb is not None:
            revision = int(nb or 0)
        elif letter is not None:
            numbers += [0, ord(letter.lower()) - ord("a") + 1]
    return numbers, revision


def dewey_cmp(left: str, right: str) -> int:
    """-1, 0 or 1 as version `left` is older than, the same as or newer than `right`."""
    (lnums, lrev), (rnums, rrev) = _dewey(left), _dewey(right)
    width = max(len(lnums), len(rnums))
    lnums += [0] * (width - len(lnums))  # 1.0 == 1
    rnums += [0] * (width - len(rnums))
    if lnums != rnums:
        return -1 if lnums < rnums else 1
    return (lrev > rrev) - (lrev < rrev)


def _split_test(text: str) -> tuple[str, str] | None:
    for test in _TESTS:  # two-character tests first: "<=" is not "<" then "=..."
        if text.startswith(test):
            return test, text[len(test) :]
    return None


def _dewey_match(pattern: str, pkgname: str) -> bool:
    """`name>=1.0`, `name<2`, `name>=1.0<2` ..."""
    base, dash, version = pkgname.rpartition("-")
    cut = min(i for i in (pattern.find("<"), pattern.find(">")) if i >= 0)
    if not dash or pattern[:cut] != base:
        return False
    first = _split_test(pattern[cut:])
    if first is None:
        return False
    test, bound = first
    if test in (">", ">=") and "<" in bound:  # a lower and an upper bound
        bound, upper = bound[: bound.index("<")], bound[bound.index("<") :]
        second = _split_test(upper)
        if second is None or not _TESTS[second[0]](dewey_cmp(version, second[1]), 0):
            return False
    return _TESTS[test](dewey_cmp(version, bound), 0)


def _alternatives(pattern: str) -> list[str]:
    """`{a,b}>=1` -> [`a>=1`, `b>=1`], splitting the first {...} at its top-level commas."""
    start = pattern.index("{")
    depth, parts, begin = 0, [], start + 1
    for index in range(start, len(pattern)):
        char = pattern[index]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                parts.append(pattern[begin:index])
                return [pattern[:start] + part + pattern[index + 1 :] for part in parts]
        elif char == "," and depth == 1:
            parts.append(pattern[begin:index])
            begin = index + 1
    raise DomusError(f"malformed dependency pattern {pattern!r}: unbalanced braces")


def pkg_match(pattern: str, pkgname: str) -> bool:
    """Does package `pkgname` (name-version) satisfy `pattern`? pkg_install's pkg_match."""
    if "{" in pattern:
        return any(pkg_match(alt, pkgname) for alt in _alternatives(pattern))
    if "<" in pattern or ">" in pattern:
        return _dewey_match(pattern, pkgname)
    if any(c in pattern for c in "*?[]") and fnmatch.fnmatchcase(pkgname, pattern):
        return True
    # A bare name matches any version of it, as `name-[0-9]*` would.
    return pattern == pkgname or fnmatch.fnmatchcase(pkgname, pattern + "-[0-9]*")


def best_match(pattern: str, pkgnames: Iterable[str]) -> str | None:
    """The newest of `pkgnames` that satisfies `pattern`, as pkg_add picks a dependency."""
    best = None
    for name in pkgnames:
        if pkg_match(pattern, name) and (
            best is None or dewey_cmp(name.rpartition("-")[2], best.rpartition("-")[2]) > 0
        ):
            best = name
    return best


# -- reading a package ----------------------------------------------------------------------


def _relative(path: str, where: str, what: str) -> str:
    """`path` as a clean relative path; absolute paths and `..` would leave the prefix."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if path.startswith("/") or ".." in parts or not parts:
        raise DomusError(
            f"{where}: {what} {path!r} is not a path inside {PREFIX}",
            hint="the package is broken or malicious; rebuild it with pkg_create",
        )
    return "/".join(parts)


def parse_contents(text: str, where: str) -> PackingList:
    """Parse +CONTENTS, the packing list (pkg_create(1), PACKING LIST DETAILS)."""
    name = cwd = prefix = None
    mode: int | None = None
    owner = group = None
    files: list[File] = []
    dirs: list[str] = []
    depends: list[str] = []
    conflicts: list[str] = []
    commands: list[str] = []
    ignore_next = last_was_file = False
    # pkg_install drops trailing blanks and empty lines before it reads a line.
    for line in filter(None, (raw.rstrip() for raw in text.splitlines())):
        after_file, last_was_file = last_was_file, False
        if ignore_next:  # @ignore: the next entry is metadata, not a file to install
            ignore_next = False
            continue
        if not line.startswith("@"):
            if cwd is None or cwd.rstrip("/") != PREFIX:
                # pkg_add extracts every file relative to the first @cwd and ignores later
                # ones, so a package is only sound with a single @cwd: the image's top.
                raise DomusError(
                    f"{where}: file {line!r} is under '@cwd {cwd}'; only files under "
                    f"'@cwd {PREFIX}' can go into pkg.img",
                    hint=f"use packages built with PREFIX={PREFIX}",
                )
            files.append(File(_relative(line, where, "file"), mode, owner, group))
            last_was_file = True
            continue
        match = _COMMAND.fullmatch(line)
        command, arg = (match.group(1), match.group(2)) if match else (line, "")
        if command == "name":
            name = arg
            where = f"{name} ({where})"  # errors name the package from here on
        elif command == "cwd":
            cwd = arg
            prefix = prefix or arg
        elif command == "ignore":
            ignore_next = True
        elif command == "mode":
            if arg and not re.fullmatch(r"[0-7]{1,4}", arg):
                raise DomusError(f"{where}: '{line}' is not an octal mode")
            mode = int(arg, 8) if arg else None  # an empty @mode goes back to the archive's
        elif command == "owner":
            owner = arg or None
        elif command == "group":
            group = arg or None
        elif command == "pkgdir":
            dirs.append(_relative(arg, where, "@pkgdir"))
        elif command == "pkgdep":
            depends.append(arg)
        elif command == "pkgcfl":
            conflicts.append(arg)
        elif command == "exec":
            commands.append(arg)
        elif command == "comment" and after_file and arg.startswith(_MD5):
            files[-1] = replace(files[-1], md5=arg[len(_MD5) :].lower())
        elif command not in _INERT:
            raise DomusError(f"{where}: unknown packing list command '{line}'")
    if not name or "-" not in name:
        raise DomusError(f"{where}: +CONTENTS has no '@name <package>-<version>' line")
    seen: set[str] = set()
    for file in files:
        if file.path in seen:
            raise DomusError(f"{where}: +CONTENTS lists {file.path} twice")
        seen.add(file.path)
    return PackingList(
        name,
        prefix or PREFIX,
        tuple(files),
        tuple(dirs),
        tuple(depends),
        tuple(conflicts),
        tuple(commands),
    )


def _member(info: tarfile.TarInfo, name: str, where: str) -> Member:
    if info.isreg():
        kind, target = "file", None
    elif info.issym():
        kind, target = "link", info.linkname
    elif info.islnk():
        kind, target = "hardlink", _relative(info.linkname, where, "hard link target")
    else:
        raise DomusError(f"{where}: member {name} is not a file or a link")
    mode = info.mode & 0o7777
    return Member(name, kind, mode, info.uid, info.gid, info.uname, info.gname, target)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _open(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, "r:*")  # gzip, bzip2, xz or none, told by the content
    except (OSError, tarfile.TarError) as error:
        raise DomusError(
            f"cannot read package {path}: {error}",
            hint="a pkgsrc binary package is a tar archive, plain or compressed with gzip, "
            "bzip2 or xz; signed packages must be unwrapped first",
        ) from None


def read_package(path: Path) -> Package:
    """Read a package's metadata and member list (contents stay in the archive)."""
    where = path.name
    meta: dict[str, bytes] = {}
    members: dict[str, Member] = {}
    with _open(path) as archive:
        try:
            for info in archive:
                if not meta and info.name != "+CONTENTS":
                    raise DomusError(
                        f"{where}: the first member is {info.name!r}, not +CONTENTS",
                        hint="not a pkgsrc binary package, or one not made by pkg_create",
                    )
                # The metadata comes first; pkg_add reads it before it extracts anything.
                if not members and info.name.startswith("+") and "/" not in info.name:
                    stream = archive.extractfile(info) if info.isreg() else None
                    if stream is None or info.name in meta:
                        raise DomusError(f"{where}: bad metadata member {info.name}")
                    meta[info.name] = stream.read()
                    continue
                name = _relative(info.name, where, "member")
                if name in members:
                    raise DomusError(f"{where}: member {name} is in the archive twice")
                members[name] = _member(info, name, where)
        except (OSError, tarfile.TarError, EOFError) as error:
            raise DomusError(f"cannot read package {path}: {error}") from None
    if not meta:
        raise DomusError(f"{where}: empty archive, not a pkgsrc binary package")
    for required in REQUIRED_META:
        if required not in meta:
            raise DomusError(f"{where}: no {required} in the package")
    plist = parse_contents(meta["+CONTENTS"].decode(errors="replace"), where)
    where = f"{plist.name} ({path.name})"
    # pkg_add refuses a package whose archive and packing list disagree either way.
    listed = {file.path for file in plist.files}
    for name in members:
        if name not in listed:
            raise DomusError(f"{where}: the archive has {name}, which +CONTENTS does not list")
    for name in listed:
        if name not in members:
            raise DomusError(f"{where}: +CONTENTS lists {name}, which the archive lacks")
    return Package(path, _sha256(path), plist, meta, members)


def read_packing_list(path: Path) -> PackingList:
    """The packing list alone, from the archive's first member: enough to plan an install.
    Kept per file version, as every domU's pkg task asks for the same packages."""
    try:
        stat = path.stat()
    except OSError as error:
        raise DomusError(f"cannot read package {path}: {error.strerror}") from None
    return _packing_list(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4096)
def _packing_list(path: Path, mtime_ns: int, size: int) -> PackingList:
    with _open(path) as archive:
        try:
            info = archive.next()
            stream = archive.extractfile(info) if info and info.name == "+CONTENTS" else None
            if stream is None:
                raise DomusError(
                    f"{path.name}: the first member is not +CONTENTS",
                    hint="not a pkgsrc binary package, or one not made by pkg_create",
                )
            text = stream.read()
        except (OSError, tarfile.TarError, EOFError) as error:
            raise DomusError(f"cannot read package {path}: {error}") from None
    return parse_contents(text.decode(errors="replace"), path.name)


# -- which packages, in which order ---------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    path: Path
    name: str
    automatic: bool  # installed only because another package depends on it
    needed_by: str = ""  # for messages: which package needs it, by which pattern


def _beside(pattern: str, directory: Path) -> Path | None:
    """The package file pkg_add would pick for `pattern` in `directory`: the newest whose
    file name, without its suffix, matches (find_best_package_int in lib/pkg_io.c)."""
    try:
        names = sorted(entry.name for entry in directory.iterdir() if entry.is_file())
    except OSError:
        return None
    files = {
        name.removesuffix(suffix): directory / name
        for name in names
        for suffix in BESIDE_SUFFIXES
        if name.endswith(suffix) and len(name) > len(suffix)
    }
    best = best_match(pattern, files)
    return files[best] if best is not None else None


def plan(packages: Sequence[Path], installed: Iterable[str] = ()) -> list[Planned]:
    """The packages to install, in order, for the site's list `packages` on a tree that has
    `installed`: each after the dependencies it lacks, as pkg_add installs them.

    A dependency that no package before it provides is the newest of the site's other
    packages that matches, else the newest matching file beside the named package that needs
    it (directly or through others); a package pulled in from beside is automatic. A named
    package met first as a dependency is installed then, and is not automatic (pkg_add marks
    it "installed manually" when it comes to it).
    """
    named = {read_packing_list(path).name: path for path in packages}
    order: dict[str, Planned] = {}
    have = list(installed)

    def visit(path: Path, top: Path, needed_by: str, chain: tuple[str, ...]) -> None:
        plist = read_packing_list(path)
        name = plist.name
        if name in order:
            if not needed_by and order[name].automatic:
                order[name] = replace(order[name], automatic=False, needed_by="")
            return
        if name in chain:
            raise DomusError(
                f"dependency cycle: {' -> '.join((*chain[chain.index(name) :], name))}",
                hint="a package cannot depend on itself, directly or through others",
            )
        missing: list[str] = []
        for pattern in plist.depends:
            if best_match(pattern, [*have, *order]) is not None:
                continue
            site = best_match(pattern, [n for n in named if n not in order and n != name])
            found = named[site] if site is not None else _beside(pattern, top.parent)
            if found is None:
                missing.append(pattern)
                continue
            dependency = read_packing_list(found)
            if not pkg_match(pattern, dependency.name):
                raise DomusError(
                    f"{name} needs {pattern}: {found} matches it by its file name, but the "
                    f"package in it is {dependency.name}",
                    hint="rename the file after the package it holds (NAME-VERSION.tgz)",
                )
            by = "" if site is not None else f"{name}, which needs {pattern}"
            visit(found, found if site is not None else top, by, (*chain, name))
        if missing:
            raise DomusError(
                f"{name} needs {', '.join(missing)}: no package installed before it, none of "
                f"the site's packages and no {' or '.join(BESIDE_SUFFIXES)} file in "
                f"{top.parent} provides {'that' if len(missing) == 1 else 'those'}",
                hint=f"put the missing packages beside {top.name}, or list them in "
                "pkg.source.packages",
            )
        order[name] = Planned(path, name, bool(needed_by), needed_by)

    for path in packages:
        visit(path, path, "", ())
    return list(order.values())


def package_files(packages: Sequence[Path]) -> list[Path]:
    """The files an image of the site's `packages` is built from: the named packages and the
    dependencies found beside them, sorted. When that cannot be worked out (a missing
    dependency, a damaged package), the named ones: building the image then says why."""
    try:
        found = [planned.path for planned in plan(packages)]
    except DomusError:
        found = []
    return sorted({*packages, *found})


# -- the cache of extracted contents -------------------------------------------------------


def _unpack(package: Package, cache: Path) -> Path:
    """The directory under `cache` with the package's regular files, extracted once."""
    done = cache / package.digest
    if done.is_dir():
        return done
    md5 = {file.path: file.md5 for file in package.plist.files}
    # Extract beside the final name and rename: a killed build leaves no half-filled entry.
    work = cache / f".{package.digest}.{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        with _open(package.path) as archive:
            for index, info in enumerate(archive):
                if index < len(package.meta):
                    continue  # the leading metadata goes to the pkgdb, not the cache
                member = package.members[_relative(info.name, "", "")]
                if member.type != "file":
                    continue  # links are made in the tree
                dest = work / member.name  # a checked relative path, and no links in `work`
                dest.parent.mkdir(parents=True, exist_ok=True)
                digest = hashlib.md5(usedforsecurity=False)
                source = archive.extractfile(info)
                assert source is not None  # a regular file's member has contents
                with source, dest.open("wb") as out:
                    while block := source.read(1 << 20):
                        digest.update(block)
                        out.write(block)
                if md5[member.name] not in (None, digest.hexdigest()):
                    raise DomusError(
                        f"{package.name} ({package.path.name}): {member.name} does not match "
                        "its MD5 checksum in +CONTENTS",
                        hint="the package file is damaged; fetch or build it again",
                    )
        try:
            work.rename(done)
        except OSError:
            if not done.is_dir():  # else another build extracted the same package first
                raise
    except (OSError, tarfile.TarError, EOFError) as error:
        raise DomusError(f"cannot extract package {package.path}: {error}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return done


# -- installing -----------------------------------------------------------------------------


def _installed(tree: Tree) -> dict[str, PackingList]:
    """Packages already registered in the tree's package database, by name."""
    found: dict[str, PackingList] = {}
    if PKGDB not in tree:
        return found
    for path, entry in tree.walk(PKGDB):
        if entry.type == "dir" and parent_of(path) == PKGDB:
            name = path.rpartition("/")[2]
            contents = f"{path}/+CONTENTS"
            found[name] = (
                parse_contents(tree.read_text(contents), contents)
                if contents in tree
                else PackingList(name)
            )
    return found


def _check(
    package: Package, installed: dict[str, PackingList], owners: dict[str, str], tree: Tree
) -> None:
    name, plist = package.name, package.plist
    base = name.rpartition("-")[0]
    for other in installed:
        if other.rpartition("-")[0] == base:
            raise DomusError(
                f"cannot install {name}: {other} is already installed",
                hint="list each package once, in one version",
            )
    for other, other_plist in installed.items():
        clash = [p for p in plist.conflicts if pkg_match(p, other)]
        clash += [p for p in other_plist.conflicts if pkg_match(p, name)]
        if clash:
            raise DomusError(f"{name} and {other} conflict ({', '.join(clash)})")
    for file in plist.files:
        if file.path in owners:
            raise DomusError(
                f"{owners[file.path]} and {name} both install {PREFIX}/{file.path}",
                hint="two packages cannot own one file: leave one of them out",
            )
        if file.path in tree:
            raise DomusError(f"cannot install {name}: {PREFIX}/{file.path} is already there")


def _makedirs(tree: Tree, path: str) -> None:
    """Create `path` and its missing parents as pkg_add does: mode 0755, root:wheel."""
    if path == ROOT or path in tree:
        return
    _makedirs(tree, parent_of(path))
    tree.mkdir(path, 0o755)


def _id(command: str, name: str | None, member_name: str, member_id: int, package: str) -> int:
    """The uid (`command` "owner") or gid ("group") a file gets in the image."""
    table, what = (USERS, "user") if command == "owner" else (GROUPS, "group")
    if name is None:
        # As pkg_add (libarchive) does: the member's own name where NetBSD knows it, else
        # its number.
        return table.get(member_name, member_id)
    if name not in table:
        raise DomusError(
            f"{package}: @{command} {name}: {what} {name!r} is not one of NetBSD's standard "
            f"{what}s",
            hint=f"known {what}s: {', '.join(table)}; a package's own {what}s are made by "
            "its +INSTALL script, which domus does not run",
        )
    return table[name]


def _install_files(tree: Tree, package: Package, unpacked: Path) -> None:
    placed: set[str] = set()
    for file in package.plist.files:
        member = package.members[file.path]
        _makedirs(tree, parent_of(file.path))
        uid = _id("owner", file.owner, member.uname, member.uid, package.name)
        gid = _id("group", file.group, member.gname, member.gid, package.name)
        if member.type == "file":
            mode = member.mode if file.mode is None else file.mode
            tree.add_file(file.path, unpacked / file.path, mode, uid, gid)
        elif member.type == "link":
            tree.symlink(file.path, member.target or "", uid, gid)
        else:  # a hard link to a file of this package extracted before it
            if member.target not in placed or package.members[member.target].type != "file":
                raise DomusError(
                    f"{package.name}: {file.path} is a hard link to {member.target}, "
                    "which is not a file of the package extracted before it"
                )
            tree.hardlink(file.path, member.target)
        placed.add(file.path)
    for directory in package.plist.dirs:
        _makedirs(tree, directory)


def _register(tree: Tree, package: Package, installed: dict[str, PackingList]) -> None:
    """Record the package in pkgdb/<name>/ and in its dependencies' +REQUIRED_BY."""
    logdir = f"{PKGDB}/{package.name}"
    _makedirs(tree, logdir)
    for meta, data in package.meta.items():
        tree.write_bytes(f"{logdir}/{meta}", data, mode=META_MODES.get(meta, 0o444))
    dependencies: list[str] = []  # each once, as pkg_add registers them
    for pattern in package.plist.depends:
        best = best_match(pattern, installed)
        if best is not None and best not in dependencies:
            dependencies.append(best)
    for dependency in dependencies:
        required_by = f"{PKGDB}/{dependency}/+REQUIRED_BY"
        old = tree.host_path(required_by).read_bytes() if required_by in tree else b""
        tree.write_bytes(required_by, old + f"{package.name}\n".encode(), mode=0o644)


def set_var(text: str, variable: str, value: str) -> str:
    """+INSTALLED_INFO with `variable` set to `value`, as pkg_install's var_set writes it: the
    first `variable=` line replaced, later ones dropped, else the line appended."""
    lines, done = [], False
    for line in text.splitlines(keepends=True):
        if not line.startswith(f"{variable}="):
            lines.append(line)
        elif not done:
            lines.append(f"{variable}={value}\n")
            done = True
    if not done:
        lines.append(f"{variable}={value}\n")
    return "".join(lines)


def _mark_automatic(tree: Tree, name: str) -> None:
    """What pkg_add does for a package it installs as a dependency (lib/automatic.c)."""
    info = f"{PKGDB}/{name}/+INSTALLED_INFO"
    old = tree.read_text(info) if info in tree else ""
    tree.write_text(info, set_var(old, "automatic", "yes"), mode=0o644)


def byfile_records(packages: Iterable[PackingList]) -> dict[bytes, bytes]:
    """pkgdb.byfile.db after pkg_add installed `packages` in this order: each file's full path
    -> its package's name, each @pkgdir's -> "@pkgdir NAME..." (add/perform.c, extract_files;
    add_pkgdir). Keys and values are C strings: their NUL is stored too."""
    records: dict[str, str] = {}

    def store(key: str, value: str) -> None:
        # pkgdb_store: no overwriting; a key or value over MaxPathSize is not stored (and
        # pkg_add carries on without it).
        if len(key.encode()) < MAX_PATH and len(value.encode()) < MAX_PATH:
            records.setdefault(key, value)

    for plist in packages:
        for file in plist.files:
            store(f"{plist.prefix}/{file.path}", plist.name)
        for directory in plist.dirs:
            key = f"{plist.prefix}/{directory}"
            old = records.pop(key, None)  # add_pkgdir removes the old record, then stores
            if old is not None and not old.startswith("@pkgdir "):
                raise DomusError(
                    f"{plist.name}: @pkgdir {directory}: {key} is a file of {old}",
                    hint="pkg_add stops here too; leave one of the packages out",
                )
            store(key, f"{old} {plist.name}" if old else f"@pkgdir {plist.name}")
    return {k.encode() + b"\0": v.encode() + b"\0" for k, v in records.items()}


def install_packages(tree: Tree, packages: Sequence[Path], cache: Path) -> list[str]:
    """Install the site's `packages` and the dependencies they lack into `tree` (whose top is
    /usr/pkg), as pkg_add would; return the names installed, in order."""
    installed = _installed(tree)
    owners = {f.path: name for name, plist in installed.items() for f in plist.files}
    names: list[str] = []
    for planned in plan(packages, installed):
        package = read_package(planned.path)
        try:
            _check(package, installed, owners, tree)
        except DomusError as error:
            if planned.automatic:  # say where a package no one named came from
                error.message += (
                    f"; {package.name} comes from {planned.path}, found beside the packages as "
                    f"a dependency of {planned.needed_by}"
                )
            raise
        if planned.automatic:
            log.info(
                "%s: dependency of %s, found as %s", package.name, planned.needed_by, planned.path
            )
        not_run = [f"@exec {command}" for command in package.plist.commands]
        if "+INSTALL" in package.meta:
            not_run.append("+INSTALL")
        if not_run:
            log.warning("%s: not run at image build time: %s", package.name, "; ".join(not_run))
        _install_files(tree, package, _unpack(package, cache))
        _register(tree, package, installed)
        if planned.automatic:
            _mark_automatic(tree, package.name)
        installed[package.name] = package.plist
        owners.update((file.path, package.name) for file in package.plist.files)
        names.append(package.name)
    # Those installed before this call in name order (how pkg_admin rebuild meets them),
    # then this call's in install order.
    if installed:
        tree.write_bytes(
            BYFILE, write_btree(byfile_records(installed.values()).items()), mode=0o644
        )
    return names
