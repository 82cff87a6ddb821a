"""What a deploy retires on each dom0: the domUs the site no longer has.

<output>/deploy/placement.json says where each domU was last deployed. One the site no
longer names is retired there by the `./domus gc` each deploy runs on that host
(tasks.orphans: its local.img and xl config kept as images/NAME.retired-STAMP), and its
entry is dropped once that host's deploy has succeeded. A host taken out of `hosts` is no
longer reached: what was deployed to it stays there as it is, and is said so.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath

from tasks.deploy.moves import placement, placement_file
from tasks.deploy.stage import connection
from tasks.images.publish import write_file
from tasks.site import Host, Site


def retiring(site: Site) -> dict[str, list[str]]:
    """host name -> the domUs last deployed there that the site no longer has."""
    names = {domu.name for domu in site.domus}
    found: dict[str, list[str]] = {}
    for domu, host in sorted(placement(site).items()):
        if domu not in names:
            found.setdefault(host, []).append(domu)
    return found


def unreached(site: Site) -> dict[str, list[str]]:
    """The part of `retiring` on hosts the site no longer has: left there as it is."""
    known = {host.name for host in site.hosts}
    return {host: domus for host, domus in retiring(site).items() if host not in known}


def would_retire(site: Site, host: str) -> list[str]:
    """`deploy --check`'s lines for `host`."""
    return [
        f"retire {name} (no longer in the site): its local.img and xl config kept there as "
        f"images/{name}.retired-STAMP"
        for name in retiring(site).get(host, [])
    ]


def forget_retired(site: Site, deployed: dict[str, dict]) -> None:
    """Drop the entries of the domUs retired on the hosts in `deployed` (name -> what the
    host did); one that still runs there stays, to be retired by a later deploy."""
    gone = {
        name
        for host, result in deployed.items()
        for name in retiring(site).get(host, [])
        if f"{name} runs: not retired until it is shut down" not in retired_there(result)
    }
    if gone:
        kept = {name: host for name, host in placement(site).items() if name not in gone}
        write_file(placement_file(site), json.dumps(kept, indent=1, sort_keys=True) + "\n")


def retire_only(site: Site, host: Host) -> dict[str, object]:
    """The variables of the play that retires on a host left without domUs: what to retire
    and where the domus deployed there is. A site names at least one domU, so that host's
    site there is removed instead of rewritten: nothing builds there any more."""
    deploy = PurePosixPath(host.output) / "deploy"
    return {
        "output": host.output,
        "names": retiring(site).get(host.name, []),
        "python": str(deploy / "venv" / "bin" / "python"),
        "source": str(deploy / "domus"),
        "site": str(deploy / "site.yaml"),
    }


def add_retiring(inventory: dict, site: Site, hosts: list[Host]) -> None:
    """Those hosts in the inventory, as group `retire_only`."""
    top = inventory["all"]
    for host in hosts:
        variables = top["hosts"].setdefault(host.name, connection(site, host))
        variables["domus_retire"] = retire_only(site, host)
    top["children"]["retire_only"] = {"hosts": {host.name: {} for host in hosts}}


def retired_there(result: dict) -> list[str]:
    """What the `./domus gc` there said it retired."""
    said = result.get("output", {}).get("Collect garbage", "")
    return [
        line
        for line in said.splitlines()
        if line.startswith("retired ") or line.endswith("not retired until it is shut down")
    ]
