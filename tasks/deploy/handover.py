"""A move's steps on a dom0, run there as `python3 - STEP OUTPUT NAME NUMBER [ARG]` with this
file on standard input: the standard library alone, as the domus there may be older or
missing. Each step can be run again and does nothing more the second time.

On the old host, `images/NAME/released.json` records the move number and the sha256 of the
local.img handed over, and `xen/NAME.cfg.released` is its xl config while nobody offers it;
on the new host, `images/NAME/accepted.json` records the move that brought its local.img.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

RUNNING = 3  # exit status: the domU runs here
REFUSED = 4  # exit status: the step is refused, with the reason on stderr


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _record(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write(path: Path, data: dict) -> None:
    temporary = path.with_name(f".{path.name}.new")
    with open(temporary, "w") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)


def _refuse(message: str, status: int = REFUSED) -> None:
    print(message, file=sys.stderr)
    sys.exit(status)


def _runs_here(output: Path, name: str) -> bool:
    deploy = output / "deploy"
    python = deploy / "venv" / "bin" / "python"
    if not python.exists():
        return False  # never deployed here: no domus there to ask xl
    done = subprocess.run(
        [
            str(python),
            "-P",
            "-c",
            "import json; from tasks.xl import running_domains as r; "
            "print(json.dumps([d.name for d in r()]))",
        ],
        env={**os.environ, "PYTHONPATH": str(deploy / "domus")},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        _refuse(f"cannot tell whether {name} runs: {done.stderr.strip() or done.stdout}")
    return name in json.loads(done.stdout)


def release(output: Path, name: str, number: int) -> None:
    """Stop offering the domU and record what is handed over; refused while it runs."""
    images = output / "images" / name
    record = images / "released.json"
    config = output / "xen" / f"{name}.cfg"
    released = config.with_name(config.name + ".released")
    kept = _record(record)
    if kept.get("number") != number:
        if not (images / "local.img").exists():
            _refuse(f"{images / 'local.img'} is not there")
        if _runs_here(output, name):
            _refuse(f"{name} runs there", RUNNING)
        if config.exists():
            os.replace(config, released)
        kept = {"number": number, "sha256": sha256(images / "local.img")}
        _write(record, kept)
    print(json.dumps(kept))


def restore(output: Path, name: str, number: int) -> None:
    """Offer the domU again: the move did not happen."""
    images = output / "images" / name
    record = images / "released.json"
    if _record(record).get("number") not in (number, None):
        _refuse(f"{record} belongs to another move")
    config = output / "xen" / f"{name}.cfg"
    released = config.with_name(config.name + ".released")
    if released.exists() and not config.exists():
        os.replace(released, config)
    record.unlink(missing_ok=True)


def accept(output: Path, name: str, number: int, expected: str) -> None:
    """Put the shipped local.img in place, only the one released for this move."""
    images = output / "images" / name
    record = images / "accepted.json"
    if _record(record).get("number") == number:
        return  # accepted before a kill: the build there may have converged it since
    local = images / "local.img"
    incoming = images / f".local.img.move-{number}"
    if local.exists():
        _refuse(f"{local} is there already and is another image; move it away first")
    if not incoming.exists() or sha256(incoming) != expected:
        _refuse(f"{incoming} is not the local.img released for move {number}")
    inputs = images / f".local.img.inputs.json.move-{number}"
    if inputs.exists():
        os.replace(inputs, images / "local.img.inputs.json")
    os.replace(incoming, local)
    _write(record, {"number": number, "sha256": expected})


def discard(output: Path, name: str, number: int) -> None:
    """Take back what this move brought here, before it was confirmed: the old host still
    holds the domU's state."""
    images = output / "images" / name
    for each in images.glob(f".local.img*.move-{number}"):
        each.unlink()
    if _record(images / "accepted.json").get("number") == number:
        # started there from the xl config its build wrote before a kill: it is the
        # domU's state now, and the operator's to settle
        if _runs_here(output, name):
            _refuse(f"{name} runs there", RUNNING)
        (output / "xen" / f"{name}.cfg").unlink(missing_ok=True)
        shutil.rmtree(images)
    elif images.is_dir() and not any(images.iterdir()):
        images.rmdir()


def archive(output: Path, name: str, number: int, stamp: str) -> None:
    """The move is confirmed: keep the image handed over as a dated archive, 0600."""
    images = output / "images" / name
    if _record(images / "released.json").get("number") != number:
        if images.exists():
            _refuse(f"{images} was not released for move {number}")
        return  # archived already
    kept = images.with_name(f"{name}.moved-{stamp}")
    for path in images.rglob("*"):
        path.chmod(0o700 if path.is_dir() else 0o600)
    images.chmod(0o700)
    os.replace(images, kept)
    (output / "xen" / f"{name}.cfg.released").unlink(missing_ok=True)


STEPS = {
    "release": release,
    "restore": restore,
    "accept": accept,
    "discard": discard,
    "archive": archive,
}


if __name__ == "__main__":
    step, output, name, number, *rest = sys.argv[1:]
    os.umask(0o077)
    STEPS[step](Path(output), name, int(number), *rest)
