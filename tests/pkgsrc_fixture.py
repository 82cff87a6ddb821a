"""Build small pkgsrc binary packages laid out as pkg_create(1) writes them.

Used by the tests and by config/example/packages/make-examples.py. The layout is what pkg_add
expects: +CONTENTS first, then the other metadata files in pkg_add's order, then the files in
packing-list order, owned by root:wheel. The output is deterministic (fixed mtimes, sorted
files, gzip header without name or time), so the same input always gives the same bytes.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

PREFIX = "/usr/pkg"
MTIME = 1_700_000_000  # any fixed time: it keeps rebuilt packages byte-identical
BUILD_INFO = {
    "MACHINE_ARCH": "x86_64",
    "OPSYS": "NetBSD",
    "OS_VERSION": "10.0",
    "PKGTOOLS_VERSION": "20091115",  # old enough for any pkg_install to accept
}
# The order pkg_add reads the metadata in (pkg_meta_descriptors in pkg_install's add/perform.c)
# and the modes pkg_create archives it with (pkg_build in create/build.c). Stated here from
# pkg_install's source, never taken from tasks/pkgsrc.
META = {
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
}


@dataclass(frozen=True)
class Symlink:
    target: str


@dataclass(frozen=True)
class Hardlink:
    target: str  # an earlier member's name


# bytes: a file of mode 0644; (bytes, mode): a file of that mode.
Content = bytes | tuple[bytes, int] | Symlink | Hardlink


def _compress(path: Path, data: bytes) -> bytes:
    if path.suffix in (".tgz", ".gz"):
        return gzip.compress(data, compresslevel=9, mtime=0)
    if path.suffix in (".txz", ".xz"):
        return lzma.compress(data, format=lzma.FORMAT_XZ)
    if path.suffix in (".tbz", ".bz2"):
        return bz2.compress(data)
    return data


def write_package(
    path: Path,
    meta: Mapping[str, bytes],
    members: Iterable[tuple[str, Content]],
    *,
    owner: tuple[str, int, str, int] = ("root", 0, "wheel", 0),
) -> None:
    """Write a package archive exactly as given, in the given order, without any checks,
    so that tests can write broken packages too. The suffix of `path` picks compression."""
    uname, uid, gname, gid = owner
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:

        def add(name: str, content: Content, mode: int = 0o644) -> None:
            info = tarfile.TarInfo(name)
            info.mtime, info.uname, info.uid, info.gname, info.gid = MTIME, uname, uid, gname, gid
            data = None
            if isinstance(content, Symlink):
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, content.target, 0o755
            elif isinstance(content, Hardlink):
                info.type, info.linkname, info.mode = tarfile.LNKTYPE, content.target, mode
            else:
                data, info.mode = content if isinstance(content, tuple) else (content, mode)
                info.size = len(data)
            archive.addfile(info, io.BytesIO(data) if data is not None else None)

        for name, data in meta.items():
            add(name, data, META.get(name, 0o444))
        for name, content in members:
            add(name, content)
    path.write_bytes(_compress(path, buffer.getvalue()))


def make_package(
    path: Path,
    name: str,
    files: Mapping[str, Content],
    depends: Iterable[str] = (),
    comment: str = "Small package for domus tests",
    desc: str = "A package built by tests/pkgsrc_fixture.py.\n",
    *,
    pkgdirs: Iterable[str] = (),
    meta: Mapping[str, bytes] | None = None,
    owners: Mapping[str, tuple[str, str]] | None = None,
) -> None:
    """Write a well-formed package `name` (name-version) installing `files` under /usr/pkg.

    +CONTENTS has @name, @pkgdep, @cwd, each file followed by its `@comment MD5:` (or
    `@comment Symlink:`), @pkgdir, and the metadata files as `@ignore` entries, as pkg_create
    writes it with `-I /usr/pkg`. `meta` adds or replaces metadata files (e.g. +INSTALL);
    `owners` gives a file an `@owner` and `@group` (user, group), as SPECIAL_PERMS does.
    """
    plist = [f"@name {name}", *(f"@pkgdep {d}" for d in depends), f"@cwd {PREFIX}"]
    size = 0
    for file, content in sorted(files.items()):
        owner = (owners or {}).get(file)
        if owner is not None:
            plist += [f"@owner {owner[0]}", f"@group {owner[1]}"]
        plist.append(file)
        if isinstance(content, Symlink):
            plist.append(f"@comment Symlink:{content.target}")
            size += len(content.target)
        elif not isinstance(content, Hardlink):
            data = content[0] if isinstance(content, tuple) else content
            plist.append(f"@comment MD5:{hashlib.md5(data, usedforsecurity=False).hexdigest()}")
            size += len(data)
        if owner is not None:
            plist += ["@owner", "@group"]
    plist += [f"@pkgdir {d}" for d in pkgdirs]
    extra = {
        "+COMMENT": comment.encode() + b"\n",
        "+DESC": desc.encode(),
        "+BUILD_INFO": "".join(f"{k}={v}\n" for k, v in sorted(BUILD_INFO.items())).encode(),
        "+SIZE_PKG": f"{size}\n".encode(),
        **(meta or {}),
    }
    # pkg_create lists the metadata after an `@cwd .` that -I turns into the prefix.
    plist.append(f"@cwd {PREFIX}")
    for meta_name in sorted(extra, key=_meta_order):
        plist += ["@ignore", meta_name]
    contents = {"+CONTENTS": "".join(line + "\n" for line in plist).encode()}
    ordered = contents | {k: extra[k] for k in sorted(extra, key=_meta_order)}
    write_package(path, ordered, sorted(files.items()))


def _meta_order(name: str) -> tuple[int, str]:
    order = list(META)
    return (order.index(name) if name in order else len(order), name)
