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

from tasks.errors import DomusError
from tasks.progress import Progress
from tasks.tree import ROOT, Entry, Tree, link_or_copy, normalize


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
    for archive in sets:
        _extract(archive, work / "tree", entries)
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
    try:
        path = normalize(member.name)
    except DomusError:
        raise DomusError(f"{archive}: member {member.name!r} leaves the tree") from None
    if member.name.startswith("/"):
        raise DomusError(f"{archive}: member {member.name!r} is an absolute path")
    if path == ROOT:
        entries[ROOT] = Entry("dir", member.mode & 0o7777, member.uid, member.gid)
        return
    host = dest / path
    if not (member.isdir() or member.isfile() or member.issym() or member.islnk()):
        return  # device nodes: init(8) makes /dev at boot
    host.parent.mkdir(parents=True, exist_ok=True)
    if member.isdir():
        host.mkdir(exist_ok=True)
        entries[path] = Entry("dir", member.mode & 0o7777, member.uid, member.gid)
        return
    if host.is_symlink() or host.is_file():
        host.unlink()
    if member.issym():
        host.symlink_to(member.linkname)
        entries[path] = Entry("link", 0o755, member.uid, member.gid, member.linkname)
    elif member.islnk():
        target = normalize(member.linkname)
        if target not in entries:
            raise DomusError(f"{archive}: hard link {member.name} to missing {member.linkname}")
        link_or_copy(dest / target, host)
        entries[path] = entries[target]
    else:
        source = tar.extractfile(member)
        assert source is not None
        with source, open(host, "wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)
        entries[path] = Entry("file", member.mode & 0o7777, member.uid, member.gid)
