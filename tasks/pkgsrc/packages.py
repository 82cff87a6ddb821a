"""pkgsrc binary packages as pkg_add(1) reads them: their packing lists, version patterns,
and which package files a set of named ones needs, in the order they are installed.

A dependency no package installed before provides is taken from the packages the site names,
else found as pkg_add finds it: the newest matching file beside the named package. Nothing
here touches an image tree, so the pkg task can name its inputs without loading the recipes.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import operator
import re
import tarfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from tasks.run.errors import DomusError

PREFIX = "/usr/pkg"  # the tree's top: where the domU mounts pkg.img
PKGDB = "pkgdb"  # PKG_DBDIR (/usr/pkg/pkgdb), relative to the top
# pkg_add finds a missing dependency among the files beside the package it was named with
# whose names end so (strip_suffix in pkg_install's lib/pkg_io.c: not .txz).
BESIDE_SUFFIXES = (".tgz", ".tbz")

REQUIRED_META = ("+CONTENTS", "+COMMENT", "+DESC")  # pkg_add refuses a package without them

# Packing-list commands that change nothing at install time: @src and @blddep matter to the
# build, @dirrm, @unexec and @option (preserve) to pkg_delete, @display to pkg_add's output.
# @mode too: pkg_add sets it on the archive entry after it has written the entry's header
# (add/perform.c, extract_files), so a file keeps the mode it has in the archive.
_INERT = {"src", "blddep", "dirrm", "unexec", "option", "display", "comment", "mode"}
_COMMAND = re.compile(r"@(\w+)\s*(.*)")
_MD5 = "MD5:"


@dataclass(frozen=True)
class File:
    """A file line of the packing list, with the @owner and @group in force for it."""

    path: str  # relative to the prefix; also the archive member's name
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
    mtime: float
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
    """The one of `pkgnames` pkg_add picks for `pattern` (pkg_order in lib/opattern.c): the
    newest that satisfies it; of equal versions the name first in strcmp's order, so the
    answer does not depend on the order the names come in."""
    best = None
    for name in pkgnames:
        if not pkg_match(pattern, name):
            continue
        if best is None:
            best = name
            continue
        newer = dewey_cmp(name.rpartition("-")[2], best.rpartition("-")[2])
        if newer > 0 or (newer == 0 and name < best):  # code points sort as UTF-8 bytes do
            best = name
    return best


# -- reading a package ----------------------------------------------------------------------


def relative_member(path: str, where: str, what: str) -> str:
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
            files.append(File(relative_member(line, where, "file"), owner, group))
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
        elif command == "owner":
            owner = arg or None
        elif command == "group":
            group = arg or None
        elif command == "pkgdir":
            dirs.append(relative_member(arg, where, "@pkgdir"))
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
        kind, target = "hardlink", relative_member(info.linkname, where, "hard link target")
    else:
        raise DomusError(f"{where}: member {name} is not a file or a link")
    mode = info.mode & 0o7777
    return Member(name, kind, mode, info.uid, info.gid, info.uname, info.gname, info.mtime, target)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def open_package(path: Path) -> tarfile.TarFile:
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
    with open_package(path) as archive:
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
                name = relative_member(info.name, where, "member")
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
    return _packing_list(path, *file_version(path))


def file_version(path: Path) -> tuple[int, int]:
    """(mtime_ns, size) of a package file: what a cache of what is read from it is kept by."""
    try:
        stat = path.stat()
    except OSError as error:
        raise DomusError(f"cannot read package {path}: {error.strerror}") from None
    return stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=4096)
def _packing_list(path: Path, mtime_ns: int, size: int) -> PackingList:
    with open_package(path) as archive:
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
