"""What each held unit has attached and mounted, written down in the lock directory.

A run killed with SIGKILL cannot clean up; its record says what it left (the device, the
cgd unit, the mount point), and the next run, finding the unit's lock free, undoes it.
A record is written before each step it names, so it may name a device that was never
attached: whoever cleans up asks the system before undoing anything.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

RECORDS = "attachments"
MOUNTS = "mnt"


@dataclass(frozen=True)
class Record:
    backend: str
    unit: int
    unit_name: str
    pid: int
    image: str
    what: str  # what the job was doing, for messages: "converging www1"
    mountpoint: str
    device: str | None = None
    cgd: str | None = None
    started: str = ""

    def with_device(self, device: str) -> Record:
        return replace(self, device=device)

    def describe(self) -> str:
        held = [self.device or "no device yet"]
        if self.cgd:
            held.append(self.cgd)
        return (
            f"{' and '.join(held)} for {self.image} (pid {self.pid}, {self.what}, "
            f"started {self.started}), mount point {self.mountpoint}"
        )


def records_dir(locks: Path) -> Path:
    return locks / RECORDS


def record_path(locks: Path, unit_name: str) -> Path:
    return records_dir(locks) / f"{unit_name}.json"


def mount_dir(locks: Path, unit_name: str) -> Path:
    return locks / MOUNTS / unit_name


def save(locks: Path, record: Record) -> None:
    from tasks.images.publish import save_small

    text = json.dumps(asdict(record), indent=1)
    save_small(record_path(locks, record.unit_name), text, "the record of an attached image")


def remove(locks: Path, unit_name: str) -> None:
    record_path(locks, unit_name).unlink(missing_ok=True)


def load(path: Path) -> Record | None:
    try:
        return Record(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def load_all(locks: Path) -> list[tuple[Path, Record | None]]:
    directory = records_dir(locks)
    if not directory.is_dir():
        return []
    return [(path, load(path)) for path in sorted(directory.glob("*.json"))]


def any_left(locks: Path) -> bool:
    """Cheap enough for every run: one directory listing, usually of nothing."""
    try:
        return any(name.endswith(".json") for name in os.listdir(records_dir(locks)))
    except OSError:
        return False
