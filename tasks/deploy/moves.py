"""A domU whose `host` changed: its local.img (its state) goes with it, through this machine.

<output>/deploy/placement.json records where each domU was last deployed. A domU placed
elsewhere now is moved: refused while it runs on the old host (`xl` there, through
tasks.xl); otherwise its local.img is pulled here and checked by sha256, sent to the new
host and checked there again, and only once the new host's build has succeeded is it
taken out of the old host's images, kept there as images/NAME.moved-STAMP. A move that
fails at any step leaves the domU where it was, and the next deploy tries again. Every
copy is 0600 from its creation: here in a 0700 directory (<output>/deploy/moves/NAME), on
the new host in the domU's directory, which the build that takes it in makes 0700.
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tasks.deploy.stage import deploy_dir, rsh
from tasks.errors import DomusError
from tasks.images.publish import write_file
from tasks.private import PRIVATE_DIR, PRIVATE_FILE
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


def record_placement(site: Site, deployed: list[str]) -> None:
    """The domUs of the hosts in `deployed` are where the site places them now."""
    placed = placement(site)
    placed.update({domu.name: domu.host for domu in site.domus if domu.host in deployed})
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


def copy_dir(site: Site, move: Move) -> Path:
    return deploy_dir(site) / "moves" / move.name


def _images(site: Site, host: str) -> PurePosixPath:
    return PurePosixPath(site.host(host).output) / "images"


def _copy(site: Site, host: Host, sources: list[str], dest: str) -> list[str]:
    """rsync of a domU's local.img between `host` and here, sparse, in either direction;
    unlike a shipment (tasks.deploy.stage.rsync) it deletes nothing where it writes. The
    copy is the domU's state: 0600 from its creation, whatever the mode it had there."""
    argv = ["rsync", "-aSz", f"--chmod=D{PRIVATE_DIR:o},F{PRIVATE_FILE:o}", "--stats", "--mkpath"]
    return [*argv, "-e", rsh(site, host), *sources, dest]


def outgoing(site: Site, move: Move, stamp: str) -> dict[str, str]:
    """What the old host's plays need to hand the domU over."""
    host = site.host(move.old)
    images = _images(site, move.old)
    copy = copy_dir(site, move)
    remote = f"{host.user}@{host.address}:{images / move.name}"
    pull = _copy(site, host, [f"{remote}/local.img", f"{remote}/local.img.inputs.json"], f"{copy}/")
    return {
        "name": move.name,
        "to": move.new,
        "local": str(images / move.name / "local.img"),
        "taken": str(copy / "local.img"),
        "sha256": str(copy / "sha256"),
        # the directories rsync makes here are 0700 too
        "pull": f"umask 077 && rm -rf {shlex.quote(str(copy))} && {shlex.join(pull)}",
        "retire": shlex.join(
            ["mv", str(images / move.name), str(images / f"{move.name}.moved-{stamp}")]
        )
        + " && "
        + shlex.join(["rm", "-f", str(PurePosixPath(host.output) / "xen" / f"{move.name}.cfg")]),
    }


def incoming(site: Site, move: Move) -> dict[str, str]:
    """What the new host's role needs to take the domU's state in."""
    host = site.host(move.new)
    images = _images(site, move.new)
    copy = copy_dir(site, move)
    ship = _copy(
        site,
        host,
        [f"{copy}/local.img", f"{copy}/local.img.inputs.json"],
        f"{host.user}@{host.address}:{images / move.name}/",
    )
    return {
        "name": move.name,
        "from": move.old,
        "local": str(images / move.name / "local.img"),
        "sha256": str(copy / "sha256"),
        "ship": shlex.join(ship),
    }


def stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%S")
