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

Which packages, in which order, is tasks.pkgsrc.packages's answer.

Not done, on purpose:
- +INSTALL scripts and @exec lines are not run (they are logged). They are NetBSD commands,
  and what they do (add users and groups, copy example configuration into place) belongs to
  the domU, not to an image built on another host: tasks.pkgsrc.setup reads the script's data
  lines and each domU's local.img gets that setup; here a file may be owned by the users and
  groups it adds.

File contents are extracted once per package file into a cache and the tree's files are hard
links into it, so rebuilding an image does not extract the packages again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tarfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from tasks.formats.btree_db import write_btree
from tasks.images.tree import ROOT, Tree, parent_of
from tasks.pkgsrc.packages import (
    PKGDB,
    PREFIX,
    Package,
    PackingList,
    best_match,
    open_package,
    parse_contents,
    pkg_match,
    plan,
    read_package,
    relative_member,
)
from tasks.run.errors import DomusError

log = logging.getLogger(__name__)

BYFILE = f"{PKGDB}/pkgdb.byfile.db"  # pkg_install's file-to-package index (lib/pkgdb.c)
MAX_PATH = 1024  # MaxPathSize: pkgdb_store refuses a longer key or value (with its NUL)

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
        with open_package(package.path) as archive:
            for index, info in enumerate(archive):
                if index < len(package.meta):
                    continue  # the leading metadata goes to the pkgdb, not the cache
                member = package.members[relative_member(info.name, "", "")]
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


Accounts = tuple[Mapping[str, int], Mapping[str, int]]  # users and groups: name -> id


def _id(
    command: str, name: str | None, member_name: str, member_id: int, package: str, ids: Accounts
) -> int:
    """The uid (`command` "owner") or gid ("group") a file gets in the image."""
    table, what = (ids[0], "user") if command == "owner" else (ids[1], "group")
    if name is None:
        # As pkg_add (libarchive) does: the member's own name where NetBSD knows it, else
        # its number.
        return table.get(member_name, member_id)
    if name not in table:
        raise DomusError(
            f"{package}: @{command} {name}: {what} {name!r} is not one of NetBSD's standard "
            f"{what}s, nor made by a package of the set (a `# {what.upper()}:` line of its "
            "+INSTALL)",
            hint=f"known {what}s: {', '.join(table)}",
        )
    return table[name]


def _install_files(tree: Tree, package: Package, unpacked: Path, ids: Accounts) -> None:
    placed: set[str] = set()
    now = time.time()
    for file in package.plist.files:
        member = package.members[file.path]
        _makedirs(tree, parent_of(file.path))
        uid = _id("owner", file.owner, member.uname, member.uid, package.name, ids)
        gid = _id("group", file.group, member.gname, member.gid, package.name, ids)
        if member.type == "file":
            tree.add_file(file.path, unpacked / file.path, member.mode, uid, gid)
        elif member.type == "link":
            tree.symlink(file.path, member.target or "", uid, gid)
        else:  # a hard link to a file of this package extracted before it
            if member.target not in placed or package.members[member.target].type != "file":
                raise DomusError(
                    f"{package.name}: {file.path} is a hard link to {member.target}, "
                    "which is not a file of the package extracted before it"
                )
            tree.hardlink(file.path, member.target)
        if member.type != "hardlink":  # libarchive sets no time through a hard link
            # The archive's mtime and the time of installing, as libarchive sets them for
            # pkg_add; the image writers take the staged file's (the cache's, for a file).
            os.utime(tree.host_path(file.path), (now, member.mtime), follow_symlinks=False)
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


def install_packages(
    tree: Tree, packages: Sequence[Path], cache: Path, ids: Accounts = (USERS, GROUPS)
) -> list[str]:
    """Install the site's `packages` and the dependencies they lack into `tree` (whose top is
    /usr/pkg), as pkg_add would; return the names installed, in order. `ids`: the users and
    groups a file may be owned by (tasks.pkgsrc.setup adds the packages' own)."""
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
        _install_files(tree, package, _unpack(package, cache), ids)
        _register(tree, package, installed)
        if planned.automatic:
            _mark_automatic(tree, package.name)
        installed[package.name] = package.plist
        owners.update((file.path, package.name) for file in package.plist.files)
        names.append(package.name)
    # Those installed before this call in name order (how pkg_admin rebuild meets them),
    # then this call's in install order.
    if installed:
        records = byfile_records(installed.values())
        # db writes nothing to a new tree no record was put in (__bt_sync): pkg_add, which
        # creates the file all the same, leaves it empty.
        data = write_btree(records.items()) if records else b""
        tree.write_bytes(BYFILE, data, mode=0o644)
    return names
