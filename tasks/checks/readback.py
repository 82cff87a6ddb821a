"""Every file of an image read back, in one streaming pass, bounded by what the image holds.

A local.img is the guest's: every byte of it, its inode sizes, block pointers, directory
entries and link counts included, may be crafted. So:

- FFS is read with domus's own reader (tasks/images/ffs_reader.py), which checks the
  superblock against the image before it loops over anything, refuses a block pointer
  outside the file system, an indirect block met twice and a directory reached twice; each
  inode's allocated data is read once, holes skipped, whatever its names and size claim.
  Link counts are compared with the names found, as fsck_ffs's pass 4 does.
- ext2fs is read with pytsk3, The Sleuth Kit's Python bindings: a reader independent of
  both Linux's and domus's, and in-process, so a whole image costs one process, not one
  `icat` a file. Being C code that parses what the guest wrote, it runs in one child
  process an image (tasks/checks/tsk_readback.py), within the time, memory and output
  bounds of a tool reading a guest's disk; a crash, a timeout or a memory limit of it is
  one problem line naming the image, never a traceback.
"""

from __future__ import annotations

import importlib.util
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from tasks import REPO
from tasks.checks import MOST
from tasks.images.ffs_reader import CHUNK, FfsError, FfsImage
from tasks.images.guest_limits import GUEST_TOOL_MEMORY, GUEST_TOOL_SECONDS, limit_memory
from tasks.run.errors import DomusError
from tasks.site.sizes import format_size

# seconds the reader of an ext2fs image may take for the whole image
TOOL_SECONDS = GUEST_TOOL_SECONDS
# what it may write: MOST lines of a path and a message each, with room to spare
REPORT_BYTES = 1 << 20


def ffs_read_problems(image: Path) -> list[str]:
    """What reading every entry and every file's data of an FFS image finds: the first
    structural problem (the reader stops there), else every link count that disagrees."""
    found: list[str] = []
    names: Counter[int] = Counter()
    subdirs: Counter[int] = Counter()
    nlink: dict[int, tuple[int, bytes]] = {}
    directories: dict[bytes, int] = {}
    try:
        with FfsImage(image) as reader:
            for path, inode in reader.walk():
                number, kind = inode.inode, inode.type
                names[number] += 1
                nlink.setdefault(number, (inode.nlink, path))
                if kind == "dir":
                    directories[path] = number
                    if path:
                        subdirs[directories[path.rpartition(b"/")[0]]] += 1
                elif names[number] > 1:
                    continue
                elif kind == "file":
                    for offset, length in reader.data_extents(inode):
                        for at in range(offset, offset + length, CHUNK):
                            reader.read_at(at, min(CHUNK, offset + length - at))
                elif kind == "link":
                    reader.link_target(inode)
    except FfsError as error:
        return [str(error)]
    for inode, (count, path) in nlink.items():
        # a directory is named by its parent, its own "." and each child's ".."
        wanted = 2 + subdirs[inode] if path in directories else names[inode]
        if count != wanted:
            shown = path.decode(errors="backslashreplace") or "."
            found.append(f"/{shown} (inode {inode}): link count {count}, {wanted} names found")
            if len(found) >= MOST:
                break
    return found


def _run_bounded(argv: list[str], seconds: float) -> tuple[str | None, bytes]:
    """Run `argv` under the guest limits: why it stopped short (None: it finished, exit 0)
    and what it wrote to stdout, cut a little past REPORT_BYTES."""
    # domus's modules from the repository, as ./domus finds them
    paths = [str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(paths)},
        preexec_fn=limit_memory,
    )
    assert process.stdout is not None and process.stderr is not None
    out, err = bytearray(), bytearray()
    kept = {process.stdout.fileno(): out, process.stderr.fileno(): err}
    deadline = time.monotonic() + seconds
    late = f"did not finish in {seconds:g} s"
    stopped = None
    try:
        with selectors.DefaultSelector() as selector:
            for stream in (process.stdout, process.stderr):
                selector.register(stream, selectors.EVENT_READ)
            while selector.get_map() and stopped is None:
                left = deadline - time.monotonic()
                ready = selector.select(left) if left > 0 else []
                if not ready:
                    stopped = late
                for key, _ in ready:
                    data = os.read(key.fd, 64 * 1024)
                    if not data:
                        selector.unregister(key.fileobj)
                    kept[key.fd] += data
                    if len(kept[key.fd]) > REPORT_BYTES:
                        stopped = f"wrote more than {format_size(REPORT_BYTES)}"
        if stopped is None:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                stopped = late
    finally:
        # whatever ends the wait (the limit, Ctrl-C, SIGTERM), the child goes too
        if process.poll() is None:
            process.kill()
        process.wait()
        process.stdout.close()
        process.stderr.close()
    if stopped is None and process.returncode < 0:
        stopped = f"killed by {_signal_name(-process.returncode)}"
    elif stopped is None and process.returncode != 0:
        last = (err.decode(errors="replace").strip().splitlines() or [""])[-1]
        if last.startswith("MemoryError"):
            memory = format_size(GUEST_TOOL_MEMORY)
            stopped = f"out of memory (a reader of a guest's disk may take {memory})"
        else:
            stopped = f"exit {process.returncode}: {last[:200] or 'no message'}"
    return stopped, bytes(out)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def tsk_command(image: Path, fs: str) -> list[str]:
    """The child that reads `image` back with pytsk3 (tasks/checks/tsk_readback.py); -P: the
    caller's directory is not where it looks for modules."""
    return [sys.executable, "-P", "-m", "tasks.checks.tsk_readback", str(image), fs]


def tsk_read_problems(image: Path, fs: str) -> list[str]:
    """Every directory listed and every regular file read back by The Sleuth Kit's library,
    once an inode, in one child process for the whole image: a file that cannot be read, or
    reads back shorter or longer than its inode says, is named; a child that crashes, runs
    out of time or memory, or says more than a report holds, is said in one line."""
    if importlib.util.find_spec("pytsk3") is None:
        raise DomusError(
            f"reading {image.name}: the Python module pytsk3 is not installed",
            hint="`./domus` installs it with domus's other dependencies (pyproject.toml)",
        )
    stopped, out = _run_bounded(tsk_command(image, fs), TOOL_SECONDS)
    found = []
    for line in out.splitlines():
        try:
            problem = json.loads(line)
        except ValueError:
            problem = None
        if not isinstance(problem, str):
            stopped = stopped or "a line of its report is not a JSON string"
            break
        found.append(problem)
    if stopped:
        found.insert(0, f"reading {image.name} stopped: {stopped}")
    return found[:MOST]


def read_back_problems(image: Path, fs: str) -> list[str]:
    if fs == "ffs":
        return ffs_read_problems(image)
    return tsk_read_problems(image, fs)
