"""Reading and converging the managed files of an ext2fs image without mounting it.

debugfs (e2fsprogs) reads and writes the file system as an ordinary user. Its writes are
not safe against a kill, so they go to a sparse copy of the image beside it; the copy is
checked with `e2fsck -fn` and only then renamed over the image. A kill at any moment
leaves the old image or the converged one. The guarantees are those of the mounted path:
a changed file's old inode stays, untouched, under the backup name (`ln` then `unlink`
move the name without touching the inode), and no other inode is written.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from tasks.converge.flags import from_ext2
from tasks.converge.plan import (
    Change,
    FileState,
    backup_dir,
    backup_name,
    pruned_backups,
    room_needed,
    stray_backups,
)
from tasks.images.ext2_marks import require_netbsd_superblock, take_back_linux_mount_marks
from tasks.images.ffs_reader import CHUNK
from tasks.images.guest_limits import (
    GUEST_TOOL_SECONDS,
    MAX_FILE_SIZE,
    limit_memory,
    too_large,
)
from tasks.images.plaintext import private_dir
from tasks.images.publish import publishing
from tasks.images.working_copy import working_copy
from tasks.recipes.templated import dir_mode
from tasks.run.errors import DomusError
from tasks.tools import require, run

_ECHO = "debugfs: "
_BANNER = re.compile(r"^(debugfs|e2fsck) \d")
_MISSING = "File not found by ext2_lookup"
_NOT_OPEN = ": Filesystem not open"  # each command's, after the one error that says why
_TYPE = re.compile(r"Type:\s+(\S+)\s+Mode:\s+(\d+)")
_OWNER = re.compile(r"User:\s+(\d+)\s+Group:\s+(\d+)")
_FLAGS = re.compile(r"Flags:\s+0x([0-9a-fA-F]+)")
_SIZE = re.compile(r"\bSize:\s+(\d+)")


def quoted(path: str) -> str:
    if '"' in path or "\n" in path:
        raise DomusError(f"{path!r}: debugfs cannot name this path", hint="rename the template")
    return f'"{path}"'


def absolute(path: str) -> str:
    return quoted("/" + path)


def ancestors(path: str) -> list[str]:
    parts = path.split("/")[:-1]
    return ["/".join(parts[: depth + 1]) for depth in range(len(parts))]


def run_debugfs(
    image: Path, commands: Sequence[str], write: bool = False
) -> tuple[dict[str, str], list[str]]:
    """Each command's output, and debugfs' error lines (a missing file is one of them)."""
    argv = ["debugfs", *(["-w"] if write else []), "-f", "-", str(image)]
    done = run(
        argv,
        image.name,
        check=False,
        input="".join(f"{c}\n" for c in commands),
        errors="surrogateescape",
        guest=True,
    )
    outputs: dict[str, str] = {}
    current = None
    for line in done.stdout.splitlines():
        if line.startswith(_ECHO):
            current = line[len(_ECHO) :]
            outputs[current] = ""
        elif current is not None:
            outputs[current] += line + "\n"
    errors = [
        line.strip()
        for line in done.stderr.splitlines()
        if line.strip() and not _BANNER.match(line) and not line.endswith(_NOT_OPEN)
    ]
    if done.returncode != 0:
        errors.append(f"debugfs exited with status {done.returncode}")
    return outputs, errors


def streamed(image: Path, path: str, what: str) -> Iterator[bytes]:
    """The content of the file /`path` of the image, as `debugfs cat` writes it: a chunk at
    a time, so neither memory nor a disk holds it whole; within the limits of a tool
    reading a guest's disk."""
    debugfs = require("debugfs", what)
    argv = [debugfs, "-R", f"cat {absolute(path)}", str(image)]
    with subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=limit_memory,
    ) as process:
        stopped: list[bool] = []

        def stop() -> None:
            stopped.append(True)
            process.kill()

        timer = threading.Timer(GUEST_TOOL_SECONDS, stop)
        timer.start()
        try:
            assert process.stdout is not None and process.stderr is not None
            while chunk := process.stdout.read(CHUNK):
                yield chunk
            errors = process.stderr.read(64 * 1024).decode(errors="replace").splitlines()
            process.wait()
        finally:
            timer.cancel()
            process.kill()
    if stopped:
        raise DomusError(
            f"{what}: `debugfs` did not finish in {GUEST_TOOL_SECONDS:g} s and was stopped"
        )
    fatal = [e.strip() for e in errors if e.strip() and not _BANNER.match(e)]
    if process.returncode != 0 or fatal:
        raise DomusError(
            f"{what}: debugfs cannot read /{path}: "
            + ("; ".join(fatal) or f"exit {process.returncode}")
        )


def check_clean(image: Path) -> None:
    """debugfs trusts the file system it edits: one with errors is not edited."""
    done = run(["e2fsck", "-fn", str(image)], image.name, check=False, guest=True)
    if done.returncode != 0:
        found = [line for line in done.stdout.splitlines() if line and not _BANNER.match(line)]
        raise DomusError(
            f"{image} has file system errors (`e2fsck -fn` exit "
            f"{done.returncode}): {'; '.join(found[-3:])}",
            hint=f"with its domU down, repair it with `e2fsck -fy {image}`, then run again",
        )


def keep_owner(image: Path, copy: Path) -> None:
    """The copy keeps the image's owner; its mode is the private one publishing gave it."""
    st = image.stat()
    if (st.st_uid, st.st_gid) == (os.getuid(), os.getgid()):
        return
    try:
        os.chown(copy, st.st_uid, st.st_gid)
    except PermissionError:
        raise DomusError(
            f"{image} belongs to uid {st.st_uid}, gid {st.st_gid}; converging it "
            "through a copy would give it to you",
            hint="run as its owner or as root",
        ) from None


class DebugfsFiles:
    max_file_size = MAX_FILE_SIZE  # converge.max_file_size: a larger file is not read

    def __init__(self, image: Path, in_place: bool = False) -> None:
        """`in_place`: the image is itself a private copy (a sealed image's plaintext),
        written directly and thrown away when anything fails."""
        self.image, self.in_place = image, in_place
        self.pruned: list[str] = []
        self._missing_dirs: set[str] = set()
        self._names: dict[str, set[str]] = {}  # directory -> the names in it
        self._files: dict[str, set[str]] = {}  # directory -> its regular files' names
        self._moved: set[str] = set()  # old backups moved to where they are kept
        self.directory_flags: dict[str, int] = {}

    def read_all(self, paths: Sequence[str]) -> dict[str, FileState | None]:
        parents = {path.rpartition("/")[0] for path in paths}
        # the directories the files are in, and those their backups are kept in
        parents = sorted(parents | {backup_dir(parent) for parent in parents})
        dirs = sorted({"", *(d for path in paths for d in ancestors(path)), *parents})
        with private_dir(self.image) as tmp:  # the guest's files: never in the system's /tmp
            commands = [f"stat {absolute(d)}" for d in dirs]
            commands += [f"ls -p {absolute(d)}" for d in parents]
            commands += [f"stat {absolute(path)}" for path in paths]
            outputs = self._run(commands)
            for directory in dirs:
                stat_output = outputs[f"stat {absolute(directory)}"]
                kind = self._kind(stat_output)
                if kind is None:
                    self._missing_dirs.add(directory)
                elif kind[0] != "directory":
                    raise DomusError(
                        f"/{directory} in the image is a {kind[0]}, not a "
                        "directory; domus does not follow links there",
                        hint="make it a directory again, or reprovision",
                    )
                else:
                    self.directory_flags[directory] = _flags(stat_output)
            for directory in parents:
                listing = outputs[f"ls -p {absolute(directory)}"]
                entries = [line.split("/") for line in listing.splitlines() if line.count("/") >= 6]
                self._names[directory] = {fields[5] for fields in entries}
                self._files[directory] = {
                    fields[5] for fields in entries if stat.S_ISREG(int(fields[2] or "0", 8))
                }
            for path in paths:  # a file is dumped whole: its size is known first
                self._state(path, outputs[f"stat {absolute(path)}"], None)
            dumps = [
                f"dump {absolute(path)} {quoted(f'{tmp}/{index}')}"
                for index, path in enumerate(paths)
                if self._kind(outputs[f"stat {absolute(path)}"]) is not None
            ]
            outputs |= self._run(dumps) if dumps else {}
            return {
                path: self._state(path, outputs[f"stat {absolute(path)}"], Path(tmp, str(index)))
                for index, path in enumerate(paths)
            }

    def missing_dirs(self, paths: Sequence[str]) -> set[str]:
        chains = {path: [*ancestors(path), path] for path in paths}
        dirs = sorted({"", *(d for chain in chains.values() for d in chain)})
        outputs = self._run([f"stat {absolute(d)}" for d in dirs])
        missing = set()
        for path, chain in chains.items():
            for depth, directory in enumerate(["", *chain]):
                stat_output = outputs[f"stat {absolute(directory)}"]
                kind = self._kind(stat_output)
                if kind is None:  # this one and all below it: made by apply
                    missing.add(path)
                    self._missing_dirs.update(chain[max(depth - 1, 0) : -1])
                    break
                if kind[0] != "directory":
                    break
                self.directory_flags[directory] = _flags(stat_output)
        return missing

    def _run(self, commands: Sequence[str]) -> dict[str, str]:
        outputs, errors = run_debugfs(self.image, commands)
        fatal = [error for error in errors if _MISSING not in error]
        if fatal:
            raise DomusError(f"{self.image}: debugfs cannot read it: {'; '.join(fatal)}")
        return outputs

    @staticmethod
    def _kind(stat_output: str) -> tuple[str, int] | None:
        match = _TYPE.search(stat_output)
        return None if match is None else (match[1], int(match[2], 8))

    def _state(self, path: str, stat_output: str, dumped: Path | None) -> FileState | None:
        """The file's state; a DomusError for what is not a regular file or is larger than
        max_file_size. `dumped`: None to check only."""
        kind = self._kind(stat_output)
        if kind is None:
            return None
        if kind[0] != "regular":
            raise DomusError(
                f"/{path} in the image is a {kind[0]}, not a regular file; domus "
                "manages it and does not replace it",
                hint="make it a regular file again, or reprovision",
            )
        size = _SIZE.search(stat_output)
        owner = _OWNER.search(stat_output)
        if size is None or owner is None:
            raise DomusError(f"{self.image}: debugfs cannot stat /{path}: {stat_output[:200]!r}")
        if int(size[1]) > self.max_file_size:
            raise too_large(str(self.image), path, int(size[1]), self.max_file_size)
        if dumped is None:
            return None
        return FileState(
            dumped.read_bytes(), kind[1], int(owner[1]), int(owner[2]), _flags(stat_output)
        )

    def current(self, path: str) -> FileState | None:
        return self.read_all([path])[path]

    def room(self) -> tuple[int, int]:
        """Bytes free in the file system (not counting the reserve), block size."""
        outputs, errors = run_debugfs(self.image, ["stats"])
        text = outputs.get("stats", "")
        numbers = {
            key: int(match[1])
            for key in ("Free blocks", "Reserved block count", "Block size")
            if (match := re.search(rf"^{key}:\s+(\d+)", text, re.MULTILINE))
        }
        if errors or len(numbers) < 3:
            raise DomusError(f"{self.image}: debugfs cannot read its superblock: {errors}")
        free = numbers["Free blocks"] - numbers["Reserved block count"]
        return max(free, 0) * numbers["Block size"], numbers["Block size"]

    def commands(self, changes: Sequence[Change], stamp: str, tmp: Path, keep: int) -> list[str]:
        commands: list[str] = []
        for index, change in enumerate(changes):
            for directory in ancestors(change.path):
                if directory in self._missing_dirs:
                    commands += self._mkdir(directory, FileState(b"", dir_mode(directory), 0, 0))
            if change.directory:
                assert change.new is not None
                commands += self._mkdir(change.path, change.new)
                continue
            parent, _, name = change.path.rpartition("/")
            kept_in = backup_dir(parent)
            commands.append(f"cd {absolute(parent)}")
            taken = self._names.setdefault(kept_in, set())
            # backups an earlier converge left beside the file, where they would run
            strays = [] if kept_in == parent else stray_backups(name, self._files.get(parent, ()))
            if change.old is not None or strays:
                for directory in [*ancestors(kept_in), kept_in]:
                    if directory in self._missing_dirs:
                        commands += self._mkdir(
                            directory, FileState(b"", dir_mode(directory), 0, 0)
                        )
            for stray in strays:
                commands += [
                    f"ln {quoted(stray)} {_named(kept_in, stray, parent)}",
                    f"unlink {quoted(stray)}",
                ]
                self._names[parent].discard(stray)
                self._files[parent].discard(stray)
                taken.add(stray)
                self._moved.add(f"{kept_in}/{stray}")
            if change.old is not None:
                backup = backup_name(name, stamp, taken)
                taken.add(backup)
                commands += [
                    f"ln {quoted(name)} {_named(kept_in, backup, parent)}",
                    f"unlink {quoted(name)}",
                ]
            new = change.new
            if new is not None:  # None: no longer managed, the backup is its only name
                host = tmp / str(index)
                host.write_bytes(new.data)
                commands.append(f"write {quoted(str(host))} {quoted(name)}")
                commands += _set_inode(quoted(name), stat.S_IFREG, new.mode, new.uid, new.gid)
            for old in pruned_backups(name, taken, keep):
                # rm frees the inode with its last link: the backup is its only name
                commands.append(f"rm {_named(kept_in, old, parent)}")
                taken.discard(old)
                self.pruned.append(f"{kept_in}/{old}" if kept_in else old)
        return commands

    def _mkdir(self, path: str, state: FileState) -> list[str]:
        self._missing_dirs.discard(path)
        name = absolute(path)
        return [f"mkdir {name}", *_set_inode(name, stat.S_IFDIR, state.mode, state.uid, state.gid)]

    def apply(self, changes: Sequence[Change], stamp: str, keep: int) -> list[str]:
        """Converge a copy, check it, publish it over the image; returns the backups' paths."""
        before = {parent: set(names) for parent, names in self._names.items()}
        check_clean(self.image)
        with private_dir(self.image) as tmp:
            commands = self.commands(changes, stamp, tmp, keep)
            if self.in_place:
                self._write(self.image, commands)
            else:
                with publishing(self.image) as partial:
                    _, block = self.room()
                    working_copy(
                        self.image,
                        partial,
                        room_needed(changes, block),
                        f"converging {self.image} on a copy",
                    )
                    keep_owner(self.image, partial)
                    self._write(partial, commands)
        return sorted(
            f"{parent}/{name}" if parent else name
            for parent, names in self._names.items()
            for name in names - before.get(parent, set())
            if f"{parent}/{name}" not in self._moved
        )

    def _write(self, image: Path, commands: Sequence[str]) -> None:
        _, errors = run_debugfs(image, commands, write=True)
        if errors:
            raise DomusError(
                f"{self.image}: debugfs failed, the image is unchanged: " + "; ".join(errors)
            )
        try:
            # an earlier mount by Linux may have left its marks: the copy is published
            # only as NetBSD's fsck_ext2fs accepts it
            take_back_linux_mount_marks(image)
            require_netbsd_superblock(image)
            check_clean(image)
        except DomusError as error:
            raise DomusError(
                f"{self.image}: the converged copy failed its check, the "
                f"image is unchanged: {error.message}"
            ) from error


def _named(directory: str, name: str, cwd: str) -> str:
    """`name` in `directory`, as debugfs finds it from its current directory `cwd`."""
    return quoted(name) if directory == cwd else absolute(f"{directory}/{name}")


def _flags(stat_output: str) -> int:
    """The chflags NetBSD shows for the inode debugfs `stat` printed."""
    match = _FLAGS.search(stat_output)
    return from_ext2(int(match[1], 16)) if match else 0


def _set_inode(name: str, kind: int, mode: int, uid: int, gid: int) -> list[str]:
    return [f"sif {name} mode 0{kind | mode:o}", f"sif {name} uid {uid}", f"sif {name} gid {gid}"]
