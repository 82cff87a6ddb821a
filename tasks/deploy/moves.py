"""A domU whose `host` changed: its local.img (its state) is handed over, with one owner at
every moment.

<output>/deploy/placement.json records where each domU was last deployed; a domU placed
elsewhere now is moved, in steps recorded in the journal <output>/deploy/moves.json (each
written atomically), so that a deploy killed, or stopped by a host down or a full disk,
goes on from where it stopped:

1. released: the old host stops offering it (its xl config kept as NAME.cfg.released) and
   records the move's number and the sha256 of its local.img; refused while it runs there.
2. pulled: the local.img comes here (<output>/deploy/moves/NAME, 0700, files 0600), a
   transfer buffer checked against the released sha256.
3. accepted: sent to the new host, which takes only that sha256 for that move number.
4. confirmed: the new host's build succeeded; only now does placement.json name it.
5. the old host keeps its image as images/NAME.moved-STAMP (0700, files 0600) and the
   buffer here is removed; the move leaves the journal.

A failure before the confirmation takes back what the new host was sent and has the old
host offer the domU again; after it, only the old host's archiving is left to do. The
steps run there are tasks/deploy/handover.py.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tasks.deploy import handover
from tasks.deploy.cause import cause
from tasks.deploy.stage import deploy_dir, rsh
from tasks.images.private import PRIVATE_DIR, PRIVATE_FILE
from tasks.images.publish import write_file
from tasks.run.errors import DomusError
from tasks.site import Host, Site


@dataclass(frozen=True)
class Move:
    name: str
    old: str  # host names
    new: str


def placement_file(site: Site) -> Path:
    return deploy_dir(site) / "placement.json"


def placement(site: Site) -> dict[str, str]:
    """Where each domU was last deployed: domU name -> host name."""
    try:
        return json.loads(placement_file(site).read_text())
    except FileNotFoundError:
        return {}


def record_placement(site: Site, deployed: list[str], moving: set[str] = frozenset()) -> None:
    """The domUs of the hosts in `deployed` are where the site places them now, except
    those in `moving`, which stay where they were until their move is confirmed."""
    placed = placement(site)
    placed.update(
        {
            domu.name: domu.host
            for domu in site.domus
            if domu.host in deployed and domu.name not in moving
        }
    )
    write_file(placement_file(site), json.dumps(placed, indent=1, sort_keys=True) + "\n")


def _place(site: Site, name: str, host: str) -> None:
    placed = placement(site)
    placed[name] = host
    write_file(placement_file(site), json.dumps(placed, indent=1, sort_keys=True) + "\n")


def check_no_state_left_behind(site: Site) -> None:
    """A domU last deployed to a host the site no longer names cannot be moved from there:
    its local.img, its state, is on that host. Built afresh elsewhere it would be lost
    without a word, so the deploy stops before it sends anything."""
    known = {host.name for host in site.hosts}
    placed = placement(site)
    stranded = sorted(
        (domu.name, placed[domu.name])
        for domu in site.domus
        if placed.get(domu.name) not in (None, domu.host) and placed[domu.name] not in known
    )
    if stranded:
        where = ", ".join(f"{name} on {host}" for name, host in stranded)
        raise DomusError(
            f"{where}: last deployed to a host that is no longer in hosts, where its "
            "local.img (its state) still is; nothing was deployed",
            hint="put the host back in hosts for one deploy, so the domU moves with its "
            f"local.img; or, to start the domU afresh on its new host, remove its entry from "
            f"{placement_file(site)}",
        )


def moves(site: Site, hosts: list[str]) -> list[Move]:
    """The domUs that move to one of `hosts` from another host of the site."""
    placed = placement(site)
    known = {host.name for host in site.hosts}
    return [
        Move(domu.name, placed[domu.name], domu.host)
        for domu in site.domus
        if domu.host in hosts
        and placed.get(domu.name) not in (None, domu.host)
        and placed[domu.name] in known
    ]


def copy_dir(site: Site, name: str) -> Path:
    return deploy_dir(site) / "moves" / name


def _images(host: Host) -> PurePosixPath:
    return PurePosixPath(host.output) / "images"


def _copy(site: Site, host: Host, sources: list[str], dest: str) -> list[str]:
    """rsync of a domU's local.img between `host` and here, sparse, in either direction;
    unlike a shipment (tasks.deploy.stage.rsync) it deletes nothing where it writes. The
    copy is the domU's state: 0600 from its creation, whatever the mode it had there."""
    argv = ["rsync", "-aSz", f"--chmod=D{PRIVATE_DIR:o},F{PRIVATE_FILE:o}", "--stats", "--mkpath"]
    return [*argv, "-e", rsh(site, host), *sources, dest]


def pull_command(site: Site, name: str, old: Host) -> str:
    """The shell line that copies the old host's local.img (and its inputs record) into
    the transfer buffer here; the directories rsync makes here are 0700 too."""
    copy = copy_dir(site, name)
    remote = f"{old.user}@{old.address}:{_images(old) / name}"
    pull = _copy(site, old, [f"{remote}/local.img", f"{remote}/local.img.inputs.json"], f"{copy}/")
    return f"umask 077 && {shlex.join(pull)}"


def stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%S")


# -- the journal -----------------------------------------------------------------------------


def journal_file(site: Site) -> Path:
    return deploy_dir(site) / "moves.json"


def _journal(site: Site) -> dict:
    try:
        return json.loads(journal_file(site).read_text())
    except FileNotFoundError:
        return {"next": 1, "moves": {}}


def in_flight(site: Site) -> dict[str, dict]:
    """The moves a deploy left unfinished, by domU name: old, new, number, sha256, step."""
    return _journal(site)["moves"]


def _save(site: Site, journal: dict) -> None:
    write_file(journal_file(site), json.dumps(journal, indent=1, sort_keys=True) + "\n")


def _step(site: Site, journal: dict, name: str, step: str) -> None:
    journal["moves"][name]["step"] = step
    _save(site, journal)


# -- the steps -------------------------------------------------------------------------------


class StepFailed(Exception):
    """A step of a move failed; the message says why, in a line."""


class Refused(StepFailed):
    """The old host does not let the domU go (it runs there)."""


def _there(site: Site, host: Host, step: str, name: str, number: int, *args: str) -> str:
    """Run a step of tasks/deploy/handover.py on `host`; its output."""
    argv = [
        *shlex.split(rsh(site, host)),
        f"{host.user}@{host.address}",
        shlex.join([host.python, "-", step, host.output, name, str(number), *args]),
    ]
    done = subprocess.run(
        argv,
        input=Path(handover.__file__).read_text(),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode == handover.RUNNING:
        raise Refused(f"{name} runs on {host.name}")
    if done.returncode != 0:
        raise StepFailed(f"{host.name}: {cause(done.stderr + done.stdout)}")
    return done.stdout


def _shell(line: str) -> None:
    done = subprocess.run(["sh", "-c", line], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise StepFailed(cause(done.stderr + done.stdout))


def _advance(site: Site, journal: dict, move: Move) -> None:
    """Take the move as far as the new host's acceptance, from wherever it stopped."""
    old, new = site.host(move.old), site.host(move.new)
    entry = journal["moves"].get(move.name)
    if entry is None:
        number = journal["next"]
        released = json.loads(_there(site, old, "release", move.name, number))
        journal["next"] = number + 1
        entry = {"old": move.old, "new": move.new, "number": number, **released}
        journal["moves"][move.name] = entry
        _step(site, journal, move.name, "released")
    number, sha256 = entry["number"], entry["sha256"]
    copy = copy_dir(site, move.name)
    if entry["step"] == "released":
        _shell(pull_command(site, move.name, old))
        if handover.sha256(copy / "local.img") != sha256:
            raise StepFailed(f"the copy of {move.name} here is not the image {old.name} released")
        _step(site, journal, move.name, "pulled")
    if entry["step"] == "pulled":
        # a buffer is shipped only for the move that filled it, and only as released
        if handover.sha256(copy / "local.img") != sha256:
            raise StepFailed(f"the copy of {move.name} here is not the image {old.name} released")
        there = _images(new) / move.name
        ships = [
            _copy(
                site,
                new,
                [str(copy / name)],
                f"{new.user}@{new.address}:{there}/.{name}.move-{number}",
            )
            for name in ("local.img", "local.img.inputs.json")
            if (copy / name).exists()
        ]
        _shell(" && ".join(map(shlex.join, ships)))
        _there(site, new, "accept", move.name, number, sha256)
        _step(site, journal, move.name, "accepted")


def _undo(site: Site, journal: dict, name: str) -> str | None:
    """Take back an unconfirmed move: the new host drops what it was sent, the old host
    offers the domU again; why it could not, if it could not (the journal keeps it)."""
    entry = journal["moves"][name]
    try:
        if entry["step"] != "released":
            _there(site, site.host(entry["new"]), "discard", name, entry["number"])
        _there(site, site.host(entry["old"]), "restore", name, entry["number"])
    except StepFailed as error:
        _step(site, journal, name, "restoring")
        return f"{name} stays released on {entry['old']} until a deploy reaches it: {error}"
    del journal["moves"][name]
    _save(site, journal)
    return None


def _finish(site: Site, journal: dict, name: str) -> str | None:
    """A confirmed move: placement names the new host, the buffer goes, the old host
    archives its image; why that last could not be done yet, if it could not."""
    entry = journal["moves"][name]
    _place(site, name, entry["new"])
    shutil.rmtree(copy_dir(site, name), ignore_errors=True)
    try:
        _there(site, site.host(entry["old"]), "archive", name, entry["number"], stamp())
    except StepFailed as error:
        return f"{name} moved to {entry['new']}, but {entry['old']} keeps it released: {error}"
    del journal["moves"][name]
    _save(site, journal)
    return None


@dataclass
class Handover:
    """What the moves of this deploy came to."""

    accepted: list[Move]
    # why a move into a host could not be made, by the new host's name
    failed: dict[str, list[str]]
    # what each old host was told or could not do, by its name
    notes: dict[str, list[str]]


def hand_over(site: Site, moving: list[Move]) -> Handover:
    """Settle what earlier deploys left half-done, then take every move in `moving` as far as
    its new host's acceptance. A refused or failed move changes nothing on any host."""
    journal = _journal(site)
    done = Handover([], {}, {})
    wanted = {move.name: move for move in moving}
    for name, entry in list(journal["moves"].items()):
        move = wanted.get(name)
        if entry["step"] == "confirmed":
            problem = _finish(site, journal, name)
        elif entry["step"] == "restoring" or (
            move is None or (move.old, move.new) != (entry["old"], entry["new"])
        ):
            problem = _undo(site, journal, name)
        else:
            continue  # resumed below
        if problem is not None:
            done.notes.setdefault(entry["old"], []).append(problem)
    # a move finished above is no longer a move
    placed = placement(site)
    for move in moving:
        if placed.get(move.name) != move.old:
            continue
        if journal["moves"].get(move.name, {}).get("step") == "restoring":
            done.failed.setdefault(move.new, []).append(
                f"{move.name} stays on {move.old}, which could not yet offer it again"
            )
            continue
        try:
            _advance(site, journal, move)
        except Refused as refusal:
            done.notes.setdefault(move.old, []).append(
                f"refused: {refusal}: shut it down there before it moves to {move.new} "
                "(its local.img is its state)"
            )
            done.failed.setdefault(move.new, []).append(
                f"{move.name} moves here from {move.old}, but its local.img could not be "
                f"taken from there: {refusal}; it stays there"
            )
        except StepFailed as error:
            if move.name in journal["moves"]:
                problem = _undo(site, journal, move.name)
                if problem is not None:
                    done.notes.setdefault(move.old, []).append(problem)
            done.failed.setdefault(move.new, []).append(
                f"{move.name} stays on {move.old}, its move here failed: {error}"
            )
        else:
            done.accepted.append(move)
    return done


def confirm(site: Site, accepted: list[Move], built: set[str]) -> dict[str, list[str]]:
    """After the new hosts' builds: the moves whose new host built (`built`, host names) are
    confirmed and finished, the others undone; what each old host could not do yet."""
    journal = _journal(site)
    notes: dict[str, list[str]] = {}
    for move in accepted:
        if move.new in built:
            _step(site, journal, move.name, "confirmed")
            problem = _finish(site, journal, move.name)
        else:
            problem = _undo(site, journal, move.name)
        if problem is not None:
            notes.setdefault(move.old, []).append(problem)
    return notes
