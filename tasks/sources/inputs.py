"""What an image was built from, kept beside it, so a rebuild can say why it happens.

The record maps each input (a template, the kernel, a config key) to a short hash or
value; two records differ exactly in the inputs that changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from tasks.sources.fingerprint import tree_content


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()[:16]


# json.dumps(value, sort_keys=True), without making an encoder for each of 40,000 values
_ENCODE = json.JSONEncoder(sort_keys=True).encode


def flatten(value: object, prefix: str = "") -> dict[str, str]:
    if isinstance(value, Mapping):
        out: dict[str, str] = {}
        for key, sub in value.items():
            out.update(flatten(sub, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: _ENCODE(value)}


def make_record(
    files: Mapping[str, Path], config: Mapping[str, object], trees: Mapping[str, Path] | None = None
) -> dict[str, str]:
    """Files by content; large trees by the name, mode, owner and content of every entry
    (tasks.sources.fingerprint.tree_content), never by what a file system chooses (a directory's
    size, an mtime's precision), so a copy of a tree on a dom0 gives the same record."""
    record = {f"file {name}": file_hash(path) for name, path in files.items()}
    record.update({f"tree {name}": tree_content(path)[:16] for name, path in (trees or {}).items()})
    record.update({f"config {key}": value for key, value in flatten(config).items()})
    return dict(sorted(record.items()))


def record_path(image: Path) -> Path:
    return image.with_name(image.name + ".inputs.json")


def read_record(image: Path) -> dict[str, str] | None:
    try:
        return json.loads(record_path(image).read_text())
    except (FileNotFoundError, ValueError):
        return None


def write_record(image: Path, record: Mapping[str, str]) -> None:
    from tasks.images.publish import write_file  # the image writers: only when one is built

    write_file(record_path(image), json.dumps(record, indent=1, sort_keys=True) + "\n")


def changes(old: Mapping[str, str] | None, new: Mapping[str, str]) -> list[str]:
    """Names of the inputs that differ, e.g. ['file local/etc/fstab', 'config rc_conf.sshd']."""
    if old is None:
        return []
    return sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))


def describe(names: Iterable[str]) -> str:
    return ", ".join(names) or "nothing recorded"
