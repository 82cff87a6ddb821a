"""A root tree from NetBSD set tarballs, unpacked once into a cache, without root.

Each member's owner, group and mode are taken from its tar header into the manifest;
the bytes are extracted as the builder's own files. Later sets override earlier ones,
as when sysinst extracts them in order.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from tasks.images.tree import ROOT, Entry, Tree, beneath_what, blocked_by, normalize
from tasks.run.errors import DomusError
from tasks.run.progress import Progress


def cache_key(sets: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for path in sets:
        st = path.stat()
        digest.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def load_sets(sets: Sequence[Path], cache: Path, staging: Path) -> Tree:
    unpacked = cache / cache_key(sets)
    manifest = unpacked / "manifest.json"
    if not manifest.exists():
        _unpack(sets, unpacked)
    data = json.loads(manifest.read_text())
    entries = {path: Entry(**entry) for path, entry in data.items()}
    return Tree.stage(unpacked / "tree", entries, staging)


def _unpack(sets: Sequence[Path], unpacked: Path) -> None:
    work = unpacked.with_name(unpacked.name + ".partial")
    if work.exists():
        shutil.rmtree(work)
    (work / "tree").mkdir(parents=True)
    entries: dict[str, Entry] = {ROOT: Entry("dir", 0o755)}
    try:
        for archive in sets:
            _extract(archive, work / "tree", entries)
    except DomusError:
        shutil.rmtree(work)
        raise
    (work / "manifest.json").write_text(
        json.dumps({p: asdict(e) for p, e in sorted(entries.items())}, separators=(",", ":"))
    )
    if unpacked.exists():
        shutil.rmtree(unpacked)
    work.rename(unpacked)


def _extract(archive: Path, dest: Path, entries: dict[str, Entry]) -> None:
    try:
        with (
            open(archive, "rb") as raw,
            tarfile.open(fileobj=raw, mode="r:*") as tar,
            Progress(f"unpacking {archive.name}", os.fstat(raw.fileno()).st_size) as progress,
        ):
            for member in tar:
                _extract_member(tar, member, archive, dest, entries)
                progress.update(raw.tell())
    except (tarfile.TarError, OSError, EOFError) as error:
        raise DomusError(
            f"{archive}: cannot read this set: {error}",
            hint="check the file is a complete NetBSD set (.tgz or .tar.xz); download it again",
        ) from error


def _extract_member(
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    archive: Path,
    dest: Path,
    entries: dict[str, Entry],
) -> None:
    """One member below `dest`, checked against what the sets made before it (`entries`)
    before anything is written. `dest` is domus's own and starts empty, so each path on the
    way to a member is one of `entries` or a directory this extraction made: no symbolic
    link can be in the way but one that `entries` names."""
    path = _member_path(member.name, archive, member.name)
    if path == ROOT:
        entries[ROOT] = Entry("dir", member.mode & 0o7777, member.uid, member.gid)
        return
    above = blocked_by(entries, path)
    if above is not None:
        raise DomusError(
            f"{archive}: member {member.name!r} lies beneath {beneath_what(entries, above)}; "
            "a set is never extracted through a link"
        )
    host = dest / path
    if not (member.isdir() or member.isfile() or member.issym() or member.islnk()):
        return  # device nodes: init(8) makes /dev at boot
    earlier = entries.get(path)
    if earlier is not None and earlier.type == "dir" and not member.isdir():
        raise DomusError(
            f"{archive}: member {member.name!r} would replace the directory ./{path} of the "
            "sets before it"
        )
    if member.islnk():
        target = _member_path(member.linkname, archive, member.name)
        linked = entries.get(target)
        if linked is None or linked.type != "file":
            raise DomusError(
                f"{archive}: member {member.name!r} is a hard link to {member.linkname!r}, "
                "which is no regular file of the sets before it"
            )
    host.parent.mkdir(parents=True, exist_ok=True)
    if host.is_symlink() or host.is_file():
        host.unlink()  # a later set overrides an earlier one
    if member.isdir():
        host.mkdir(exist_ok=True)
        entries[path] = Entry("dir", member.mode & 0o7777, member.uid, member.gid)
    elif member.issym():
        host.symlink_to(member.linkname)
        entries[path] = Entry("link", 0o755, member.uid, member.gid, member.linkname)
    elif member.islnk():
        os.link(dest / target, host, follow_symlinks=False)
        entries[path] = entries[target]
    else:
        source = tar.extractfile(member)
        assert source is not None
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        with source, open(os.open(host, flags, 0o644), "wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)
        entries[path] = Entry("file", member.mode & 0o7777, member.uid, member.gid)


def _member_path(name: str, archive: Path, member: str) -> str:
    """A member's name (or a hard link's target) as a path in the tree; never outside it."""
    if name.startswith("/"):
        raise DomusError(f"{archive}: member {member!r}: {name!r} is an absolute path")
    try:
        return normalize(name)
    except DomusError:
        raise DomusError(f"{archive}: member {member!r}: {name!r} leaves the tree") from None
