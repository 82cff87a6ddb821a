"""What each image and xl config was last built from, kept beside doit's database.

doit's own database keeps only a digest of a task's configuration; `./domus status` needs
the values themselves to say which key changed from what to what. After every build each
task that succeeded or was up to date has its inputs recorded here: its configuration
keys and values, each file it depends on (size, mtime and hash), and each source tree by
fingerprint, with the tree's listing kept once per fingerprint to name what changed in it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Collection, Mapping
from pathlib import Path

from tasks.site import Layout
from tasks.sources.fingerprint import Entry, fingerprint_of, tree_entries
from tasks.sources.inputs import file_hash
from tasks.status.items import Item

RECORDS = ".domus-status.json"
LISTINGS = ".domus-trees"

Record = dict[str, object]
Listing = dict[str, list[int]]  # path below the top: size, mtime_ns, mode


def records_path(layout: Layout) -> Path:
    return layout.output / RECORDS


def listing_path(layout: Layout, top: Path) -> Path:
    name = hashlib.sha256(os.fsencode(top)).hexdigest()[:16]
    return layout.output / LISTINGS / f"{name}.json"


def load_records(layout: Layout) -> dict[str, Record]:
    try:
        data = json.loads(records_path(layout).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {}  # a damaged record: status says so through "no record"; a build rewrites it
    return data if isinstance(data, dict) else {}


def load_listing(layout: Layout, top: Path) -> tuple[str, Listing] | None:
    try:
        data = json.loads(listing_path(layout, top).read_text())
        return data["fingerprint"], data["entries"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def file_state(path: Path, old: list | None = None) -> list:
    """[path, size, mtime_ns, hash]; the hash of `old` is kept while size and mtime are
    its own (doit's rule for a file dependency), so a build hashes only what changed."""
    try:
        st = path.stat()
    except OSError:
        return [str(path), None, None, None]
    if old is not None and old[:3] == [str(path), st.st_size, st.st_mtime_ns]:
        return old
    return [str(path), st.st_size, st.st_mtime_ns, file_hash(path)]


class Trees:
    """Each source tree walked once per run: its fingerprint, from its listing."""

    def __init__(self) -> None:
        self.walked: dict[Path, tuple[str, list[Entry]]] = {}

    def walk(self, top: Path) -> tuple[str, list[Entry]]:
        if top not in self.walked:
            entries = list(tree_entries(top))
            self.walked[top] = fingerprint_of(entries), entries
        return self.walked[top]

    def fingerprint(self, top: Path) -> str:
        return self.walk(top)[0]

    def listing(self, top: Path) -> Listing:
        return {path: [size, mtime, mode] for path, size, mtime, mode in self.walk(top)[1]}


def record_of(item: Item, old: Mapping[str, object] | None, trees: Trees) -> Record:
    old_files = (old or {}).get("files") or {}
    assert isinstance(old_files, dict)
    return {
        "config": item.config,
        "files": {
            label: file_state(path, old_files.get(label)) for label, path in item.files.items()
        },
        "trees": {label: [str(top), trees.fingerprint(top)] for label, top in item.trees.items()},
    }


def save(layout: Layout, items: list[Item], done: Collection[str], trees: Trees) -> None:
    """Record the inputs of the tasks in `done` (built or up to date in this run); a run
    that changed none of them writes nothing."""
    from tasks.images.publish import save_small

    records = load_records(layout)
    before = json.dumps(records, sort_keys=True)
    for item in items:
        if item.task in done:
            records[item.task] = record_of(item, records.get(item.task), trees)
    text = json.dumps(records, sort_keys=True)
    if text != before:
        layout.output.mkdir(parents=True, exist_ok=True)
        save_small(records_path(layout), text, "what status compares")
    for top, (fingerprint, _) in trees.walked.items():
        path = listing_path(layout, top)
        kept = load_listing(layout, top)
        if kept is None or kept[0] != fingerprint:
            path.parent.mkdir(parents=True, exist_ok=True)
            listing = {"top": str(top), "fingerprint": fingerprint, "entries": trees.listing(top)}
            save_small(path, json.dumps(listing), "a source tree's listing, for status")
