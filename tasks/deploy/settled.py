"""What a dom0 keeps of its last successful deploy, and whether it still holds.

Run there, with the standard library alone (the domus there may be older, or missing):

    python3 - read OUTPUT            this file on standard input, by the deploy's one ssh
                                     round trip: the record, the state now, the active
                                     generations, as JSON
    python -m tasks.deploy.settled record OUTPUT DIGEST
                                     the role's last task, once everything else succeeded

<output>/deploy/last-deploy.json holds the digest of everything that deploy sent (made on
the machine that deploys: tasks.deploy.unchanged) and the state it left the host in: what
the deploy put there and what the host may change on its own since: a rollback, an
activation or a pin (the active links and the slots' state), a generation, an image, an xl
config or a key removed or added, the site, the venv, the domus tree or the inputs there
edited. A running domU's images change all the time: they count by name only. The first
task of every deploy removes the record, so one that stops halfway leaves none.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
from pathlib import Path

RECORD = Path("deploy") / "last-deploy.json"


def _file_digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as error:
        return f"!{error.errno}"


def _names(directory: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as listing:
            return sorted(listing, key=lambda entry: entry.name)
    except OSError:
        return []


def active(output: Path) -> dict[str, str]:
    """Each slot's active generation there (its key: root, pkg.NAME)."""
    found = {}
    for entry in _names(output / "images" / "generations" / "active"):
        try:
            found[entry.name] = os.path.basename(os.readlink(entry.path))
        except OSError:
            continue
    return found


def state(output: Path) -> str:
    """A digest of what a deploy leaves on the host and the host may change on its own."""
    digest = hashlib.sha256()

    def add(*parts: object) -> None:
        line = "\0".join(map(str, parts)) + "\n"
        digest.update(line.encode(errors="surrogateescape"))

    images = output / "images"
    generations = images / "generations"
    for slot, generation in sorted(active(output).items()):
        add("active", slot, generation)
    # a slot's state holds its pin and its rollback stack
    for entry in _names(generations / "slots"):
        add("slot", entry.name, _file_digest(Path(entry.path)))
    for pool in ("root", "pkg"):
        for entry in _names(generations / pool):
            add("generation", pool, entry.name)
    for entry in _names(images):
        if entry.name == "generations":
            continue
        if entry.is_symlink():
            add("image", entry.name, os.readlink(entry.path))
        elif entry.is_dir(follow_symlinks=False):
            add("domU", entry.name, *(each.name for each in _names(Path(entry.path))))
        else:
            add("image", entry.name)
    for entry in _names(output / "xen"):
        add("xen", entry.name)
    deploy = output / "deploy"
    add("site", _file_digest(deploy / "site.yaml"))
    for entry in _names(deploy / "keys"):
        add("key", entry.name, _file_digest(Path(entry.path)))
    venv = deploy / "venv"
    add(
        "venv",
        os.access(venv / "bin" / "python", os.X_OK),
        _file_digest(venv / ".domus-requirements"),
    )
    for top in ("domus", "inputs"):
        for line in _tree(deploy / top):
            add(top, *line)
    return digest.hexdigest()


def _tree(top: Path) -> list[tuple[object, ...]]:
    """Every entry below `top` as rsync compares it (a file by size and mtime), but Python's
    byte code, which running domus there writes."""
    found: list[tuple[object, ...]] = []
    stack = [top]
    while stack:
        directory = stack.pop()
        for entry in _names(directory):
            if entry.name == "__pycache__":
                continue
            st = entry.stat(follow_symlinks=False)
            name = os.path.relpath(entry.path, top)
            if stat.S_ISDIR(st.st_mode):
                found.append((name, "dir", st.st_mode))
                stack.append(Path(entry.path))
            elif stat.S_ISLNK(st.st_mode):
                found.append((name, "link", os.readlink(entry.path)))
            else:
                found.append((name, st.st_size, st.st_mtime_ns, st.st_mode))
    return found


def read(output: Path) -> dict[str, object]:
    try:
        kept = json.loads((output / RECORD).read_text())
    except (OSError, ValueError):
        kept = {}
    if not isinstance(kept, dict):
        kept = {}
    return {
        "digest": kept.get("digest"),
        "state": kept.get("state"),
        "now": state(output),
        "active": active(output),
    }


def record(output: Path, digest: str) -> None:
    path = output / RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.new")
    with open(temporary, "w") as f:
        json.dump({"digest": digest, "state": state(output)}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)


if __name__ == "__main__":
    step, output, *rest = sys.argv[1:]
    if step == "read":
        print(json.dumps(read(Path(output))))
    elif step == "record":
        record(Path(output), *rest)
    else:
        sys.exit(f"unknown step {step!r}: read or record")
