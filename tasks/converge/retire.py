"""Files domus wrote into a local image that the site no longer manages.

The image's record (tasks/recipes/managed_record.py) names each file domus wrote with the
SHA-256 of what it wrote. A recorded file that is no longer managed is removed (kept as its
backup, as any replaced file) when it is still a regular file with those very bytes; one the
domU changed, or made a link or a directory, is the domU's now: kept, and said so. rc.conf
is never recorded: domus edits the domU's own file, it does not write one. An image with no
record (built before domus kept one) has nothing removed until a converge writes one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tasks.converge.plan import ENCODING, ERRORS, Change, FileState
from tasks.recipes.local import MUTABLE_DIRS, RC_CONF, ManagedFile
from tasks.recipes.managed_record import (
    RECORD,
    RECORD_MODE,
    Parsed,
    digest,
    parse_record,
    record_text,
)
from tasks.run.errors import DomusError
from tasks.run.log import note

REMOVED = "no longer managed, removed"
KEPT = "no longer managed, kept: changed in the domU"


class Readable(Protocol):
    def read_all(self, paths: Sequence[str]) -> dict[str, FileState | None]: ...


@dataclass
class Retirement:
    removals: list[Change] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # paths the domU changed
    stale: bool = False  # the record names files no longer managed, or lines it ignored
    warnings: list[str] = field(default_factory=list)  # what of the record was ignored

    def say(self, where: str) -> None:
        for line in [*self.warnings, *(f"{where}: /{path}: {KEPT}" for path in self.kept)]:
            note(line)

    def reasons(self) -> list[str]:
        """Each file as `./domus status` tells it."""
        return sorted(
            [f"/{change.path}: {REMOVED}" for change in self.removals]
            + [f"/{path}: {KEPT}" for path in self.kept]
        )


def recorded(state: FileState | None, where: str) -> Parsed | None:
    """The record read from the image `where`; None: it has none."""
    if state is None:
        return None
    return parse_record(state.data, where, MUTABLE_DIRS, (RC_CONF, RECORD))


def read_each(files: Readable, paths: Sequence[str]) -> dict[str, FileState | DomusError | None]:
    """The state of each path; a path that is not a regular file, or lies below one that is
    not a directory, is the error the reader gave for it, not a stop."""
    try:
        return dict(files.read_all(paths))
    except DomusError:
        pass
    found: dict[str, FileState | DomusError | None] = {}
    for path in paths:
        try:
            found[path] = files.read_all([path])[path]
        except DomusError as error:
            found[path] = error
    return found


def retirement(
    files: Readable, parsed: Parsed | None, managed: Sequence[ManagedFile]
) -> Retirement:
    """What becomes of each recorded file the site no longer manages."""
    if parsed is None:
        return Retirement()
    done, record = Retirement(warnings=parsed.warnings), parsed.written
    still = {file.path for file in managed}
    paths = sorted(path for path in record if path not in still)
    done.stale = bool(paths or parsed.warnings)
    for path, state in read_each(files, paths).items() if paths else ():
        if state is None:
            continue  # the domU removed it: nothing to do
        if isinstance(state, FileState) and digest(state.data) == record[path]:
            done.removals.append(Change(path, state, None))
        else:
            done.kept.append(path)
    return done


def record_file(
    managed: Sequence[ManagedFile],
    current: Mapping[str, FileState | None],
    changes: Sequence[Change],
    parsed: Parsed | None,
) -> ManagedFile:
    """The record after the changes: each managed file the image then holds as domus writes
    it; a managed file left as it was (one written only when missing) keeps its entry."""
    after = {path: state.data for path, state in current.items() if state is not None}
    after.update({c.path: c.new.data for c in changes if c.new is not None})
    record = parsed.written if parsed is not None else {}
    written = {}
    for file in managed:
        if file.path in (RC_CONF, RECORD):
            continue
        data = file.text.encode(ENCODING, ERRORS)
        if after.get(file.path) == data:
            written[file.path] = digest(data)
        elif file.path in record:
            written[file.path] = record[file.path]
    return ManagedFile(RECORD, record_text(written), RECORD_MODE)
