"""A no-op build without doit: the record of the last complete, successful run.

After a complete run (`./domus build` of the whole site, every task built or up to date)
this records a signature of everything the run's tasks were made from and made: the site
file's bytes, domus's own code, every file a task depends on, the template and key
directories, the source trees by fingerprint, and every output by its size, mtime, inode
and mode (a symlink by its target too). A later build or status that finds them all as
recorded knows that every task is up to date, without loading the site or declaring
doit's thousands of tasks. Whatever the record does not cover makes it run doit as
before: a site that downloads its sets (each run asks the mirror whether they changed),
a run of some tasks only, a run that failed. Every command that takes the run lock
removes the record first (tasks.run.build.start_run), so a run in progress or killed leaves none.

This module imports only the standard library: it is the whole of a no-op build.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from tasks import REPO

NAME = ".domus-unchanged.json"
VERSION = 1
# domus itself: a change to its code or its Python packages can change what it builds
CODE = [
    REPO / "tasks",
    REPO / "dodo.py",
    REPO / "pyproject.toml",
    REPO / ".venv" / ".domus-requirements",
]
# `output: DIR` on a line of its own at the top level of the site file; otherwise (a quoted,
# aliased or merged value) the record is not found and doit decides
OUTPUT_LINE = re.compile(rb"^output:[ \t]*([^\s'\"#&*!|>{}\[\]][^\s#]*)[ \t]*(?:#.*)?$", re.M)
DEFAULT_OUTPUT = "build"  # tasks.site.settings: output
# File times advance by the system clock's tick (1 to 10 ms on Linux and NetBSD): a file
# written within this long of the record may have changed again without a new mtime.
RACY_NS = 50_000_000


def record_path(output: Path) -> Path:
    return output / NAME


def forget(output: Path) -> None:
    """No record: the next run runs doit (a run that changes things is starting)."""
    record_path(output).unlink(missing_ok=True)


def signature(path: str) -> tuple[str, int]:
    """Size, mtime, inode and mode (for a symlink, where it points and what it leads to),
    and the newest mtime among them."""
    try:
        st = os.lstat(path)
        if not stat.S_ISLNK(st.st_mode):
            return described(st), st.st_mtime_ns
        link = os.readlink(path)
    except OSError as error:
        return f"!{error.errno}", 0
    try:
        target = os.stat(path)
    except OSError as error:  # a link that leads nowhere
        return f"{link}>!{error.errno}", st.st_mtime_ns
    return f"{link}>{described(target)}", max(st.st_mtime_ns, target.st_mtime_ns)


def described(st: os.stat_result) -> str:
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}:{st.st_mode}"


def walk(top: Path) -> Iterator[str]:
    """`top` and everything below it (not through symlinks), but Python's byte code."""
    yield str(top)
    if not top.is_dir() or top.is_symlink():
        return
    for parent, dirs, files in os.walk(top):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in dirs + sorted(files):
            yield os.path.join(parent, name)


def environment() -> str:
    return f"{sys.version} {os.uname().sysname} {os.geteuid()}"


def digest(paths: Iterable[str], trees: dict[str, str]) -> tuple[str, int]:
    """One hash over the signature of every path, domus's code and the source trees, and
    the newest mtime among them."""
    from tasks.sources.fingerprint import fingerprint_of, tree_entries

    h = hashlib.sha256(environment().encode())
    newest = 0
    for path in [*paths, *(p for top in CODE for p in walk(top))]:
        text, mtime = signature(path)
        newest = max(newest, mtime)
        h.update(f"{path}\0{text}\n".encode(errors="surrogateescape"))
    for top in sorted(trees):
        entries = list(tree_entries(Path(top)))
        newest = max([newest, *(mtime for _, _, mtime, _ in entries)])
        h.update(f"{top}\0{fingerprint_of(entries)}\n".encode(errors="surrogateescape"))
    return h.hexdigest(), newest


def lock_free(lock: str) -> bool:
    """Whether no run holds the run lock (tasks.run.locks: flock(2) through filelock); a run
    that does makes this one run doit, which says so (exit 75) as every run does."""
    import fcntl

    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return False
    finally:
        os.close(fd)  # and with it the shared lock
    return True


def write(
    site_path: Path,
    output: Path,
    lock: Path,
    paths: Iterable[str],
    trees: dict[str, str],
    items: list[list[str | None]],
    tasks: int,
) -> None:
    """Record a complete, successful run (its caller holds the run lock)."""
    from tasks.images.publish import save_small

    watched = sorted(set(paths))
    taken = time.time_ns()
    record = {
        "version": VERSION,
        "site": str(site_path),
        "site_sha256": hashlib.sha256(site_path.read_bytes()).hexdigest(),
        "output": str(output),
        "lock": str(lock),
        "paths": watched,
        "trees": trees,
        "digest": digest(watched, trees)[0],
        "taken_ns": taken,
        "items": items,
        "tasks": tasks,
    }
    save_small(record_path(output), json.dumps(record), "the record of the last complete run")


def output_of(site_path: Path, text: bytes) -> Path | None:
    """The output directory as the site file's top-level `output:` line says it."""
    lines = re.findall(rb"^output:", text, re.M)
    found = OUTPUT_LINE.findall(text)
    if len(lines) > 1 or len(found) != len(lines):
        return None
    written = os.fsdecode(found[0]) if found else DEFAULT_OUTPUT
    return Path(os.path.abspath(site_path.parent / os.path.expanduser(written)))


def unchanged(site_path: Path) -> dict | None:
    """The record of the last complete run when nothing it covers has changed since."""
    try:
        text = site_path.read_bytes()
    except OSError:
        return None  # loading the site says what is wrong
    output = output_of(site_path, text)
    if output is None:
        return None
    try:
        record = json.loads(record_path(output).read_bytes())
    except (OSError, ValueError):
        return None
    try:
        if not (
            record["version"] == VERSION
            and record["site"] == str(site_path)
            and record["output"] == str(output)
            and record["site_sha256"] == hashlib.sha256(text).hexdigest()
        ):
            return None
        found, newest = digest(record["paths"], record["trees"])
        same = (
            found == record["digest"]
            # a file changed just before or after the record was taken may keep its mtime
            # (file times move in clock ticks): only doit can say whether it changed
            and newest < record["taken_ns"] - RACY_NS
            and lock_free(record["lock"])
        )
    except (KeyError, TypeError, OSError):
        return None
    return record if same else None
