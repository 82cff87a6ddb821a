"""What this machine prepares for each host before Ansible runs: the restricted sites, the
root and pkg generations they use, and every transfer as an rsync command line.

    <output>/deploy/generations/{root,pkg}/<id>   the generations built for any host
    <output>/deploy/<host>/site.yaml              that host's site, with the paths here
    <output>/deploy/<host>/build/                 its build here (root and pkg only); its
                                                  generation pools lead to the shared ones
    <output>/deploy/known_hosts                   the dom0s' ssh host keys (tasks/deploy/ssh.py)
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path, PurePosixPath

from tasks.deploy.restrict import Inputs, host_inputs, host_keys, restricted_site, site_text
from tasks.deploy.ssh import rsh, ssh_options
from tasks.generations.slots import pool_names, site_slots
from tasks.generations.store import Store
from tasks.site import Host, Layout, Site

REPO = Path(__file__).resolve().parents[2]
# the domus tree a dom0 runs: what `./domus` needs, not the tests or the example site
SHIPPED = ("domus", "dodo.py", "pyproject.toml", "tasks", "templates")
# not sent, as ansible-core runs only here
CONTROLLER_ONLY = {"ansible-core"}
# what `deploy --check` hears from a host without a venv of domus
NEVER_DEPLOYED = "no domus deployed there yet"


@dataclass
class Prepared:
    host: Host
    domus: list[str]
    error: str | None = None  # why it cannot be deployed

    role: dict[str, object] = field(default_factory=dict)  # the role's variables
    inputs: list[Path] = field(default_factory=list)  # the files and trees sent as its inputs


def deploy_dir(site: Site) -> Path:
    return site.output / "deploy"


def rsync(
    site: Site, host: Host, sources: list[str], dest: str, options: Sequence[str] = ("--stats",)
) -> list[str]:
    # -a keeps mtimes, which a tree's fingerprint holds; -H hard links; -S writes holes
    # as holes (images are sparse), -z sends them as next to nothing; --stats says what
    # was sent
    return [
        "rsync",
        "-aHSz",
        "--numeric-ids",
        "--delete",
        "--mkpath",
        *options,
        "--exclude=__pycache__",
        "-e",
        rsh(site, host),
        *sources,
        f"{host.user}@{host.address}:{dest}",
    ]


def requirements() -> str:
    """The runtime dependencies at the versions this machine runs: the dom0 runs the same."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = [re.split(r"[<>=!~ ;\[]", spec, maxsplit=1)[0] for spec in project["dependencies"]]
    return "".join(
        f"{name}=={metadata.version(name)}\n"
        for name in names
        if name.lower() not in CONTROLLER_ONLY
    )


def build_here(config: Path, targets: list[str]) -> str | None:
    """`./domus build TARGET...` of the site file `config` on this machine, in a process of
    its own (it takes that site's run lock); the last lines it printed when it failed."""
    done = subprocess.run(
        [sys.executable, "-P", "-m", "tasks.cli", "build", f"config={config}", *targets],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode == 0:
        return None
    return " / ".join((done.stdout + done.stderr).strip().splitlines()[-3:])


def prepare(site: Site, host: Host) -> Prepared:
    """Build what `host` needs here and describe what goes there; a failure is kept with
    the host, so the other hosts are still deployed."""
    domus = site.domus_on(host.name)
    prepared = Prepared(host, [domu.name for domu in domus])
    top = deploy_dir(site)
    here = top / host.name
    here.mkdir(parents=True, exist_ok=True)
    layout = Layout(here / "build", here / "build" / "locks")
    # every host's build here shares the generation pools: a root two hosts use alike
    # (the same inputs) is built once
    for pool in pool_names():
        shared = top / "generations" / pool
        shared.mkdir(parents=True, exist_ok=True)
        link = layout.images / "generations" / pool
        if not link.is_symlink():
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.path.relpath(shared, link.parent), link)
    config = here / "site.yaml"
    data = restricted_site(site, host, str(layout.output), str(site.keys), str)
    config.write_text(site_text(data))
    if not domus:
        return prepared  # nothing to deploy there (domUs may move away from it)
    # the images kept as generations; their slots are named as their tasks are
    slots = site_slots(domu.name for domu in domus)
    failure = build_here(config, [slot.name for slot in slots])
    if failure is not None:
        prepared.error = f"building its root and pkg images here failed: {failure}"
        return prepared
    store = Store(layout)
    active = {slot.key: store.active(slot) for slot in slots}
    used = {(slot.pool, active[slot.key]) for slot in slots}
    remote = PurePosixPath(host.output)
    deploy = remote / "deploy"
    inputs = host_inputs(site, domus)
    prepared.inputs = list(inputs.paths.values())
    host_site = restricted_site(
        site, host, host.output, str(deploy / "keys"), inputs.to(deploy / "inputs")
    )
    generations = remote / "images" / "generations"
    shipments = [rsync(site, host, [str(REPO / name) for name in SHIPPED], f"{deploy}/domus/")]
    shipments += [
        rsync(site, host, [_source(path)], f"{deploy / 'inputs' / name}{_slash(path)}")
        for name, path in inputs.paths.items()
    ]
    prepared.role = {
        "output": host.output,
        "python": host.python,
        "domus": prepared.domus,
        "site": site_text(host_site),
        "requirements": requirements(),
        # one shell line each: a task is a module run there, the slow part of a deploy
        "ship": " && ".join(map(shlex.join, shipments)),
        # what `deploy --check` asks rsync: what it would send, sending nothing
        "would_ship": " && ".join(
            shlex.join([*argv[:2], "--dry-run", *argv[2:]]) for argv in shipments
        ),
        "generations": [
            {
                "final": str(generations / pool / generation),
                "ship": shlex.join(
                    rsync(
                        site,
                        host,
                        [f"{store.path(pool, generation)}/"],
                        f"{generations / pool / f'.{generation}.partial'}/",
                    )
                ),
                # renamed into place once whole, as the store itself does
                "place": shlex.join(
                    [
                        "mv",
                        str(generations / pool / f".{generation}.partial"),
                        str(generations / pool / generation),
                    ]
                ),
            }
            for pool, generation in sorted(used)
            if generation is not None
        ],
        "keys": [{"src": str(path), "name": path.name} for path in host_keys(site, host)],
        # what each slot there has once deployed, even after a rollback there
        "active": {key: generation for key, generation in active.items() if generation},
        "check": check_role(site, host, here, inputs),
    }
    return prepared


def check_role(site: Site, host: Host, here: Path, inputs: Inputs) -> dict[str, str]:
    """What `deploy --check` does there: the new site, domus and inputs go to
    deploy/check/, beside what the host runs and never over it, and `./domus status` of
    that site compares them with what the host's images were built from."""
    deploy = PurePosixPath(host.output) / "deploy"
    check = deploy / "check"
    config = here / "check-site.yaml"
    config.write_text(
        site_text(
            restricted_site(
                site, host, host.output, str(deploy / "keys"), inputs.to(check / "inputs")
            )
        )
    )

    # a file the same as the host's is copied from it there rather than sent; never linked
    # (--link-dest), as rsync may change a linked file's mode in place
    ships = [rsync(site, host, [str(config)], f"{check}/site.yaml", ())]
    ships += [
        rsync(
            site,
            host,
            [str(REPO / name) for name in SHIPPED],
            f"{check}/domus/",
            [f"--copy-dest={deploy}/domus"],
        )
    ]
    for name, path in inputs.paths.items():
        there = deploy / "inputs" / name
        ships.append(
            rsync(
                site,
                host,
                [_source(path)],
                f"{check / 'inputs' / name}{_slash(path)}",
                [f"--copy-dest={there if path.is_dir() else there.parent}"],
            )
        )
    python = deploy / "venv" / "bin" / "python"
    status = shlex.join(
        [
            "env",
            f"PYTHONPATH={check / 'domus'}",
            str(python),
            "-P",
            "-m",
            "tasks.cli",
            "status",
            "--json",
            # what the host's images were built from is recorded where the host has it
            f"--moved={deploy / 'domus'}={check / 'domus'}",
            f"--moved={deploy / 'inputs'}={check / 'inputs'}",
            f"config={check / 'site.yaml'}",
        ]
    )
    return {
        "ship": " && ".join(map(shlex.join, ships)),
        "status": f"if test -x {shlex.quote(str(python))}; then {status}; "
        f"else echo '{NEVER_DEPLOYED}' >&2; exit 1; fi",
    }


def _source(path: Path) -> str:
    # a directory's contents, not the directory inside itself
    return f"{path}/" if path.is_dir() else str(path)


def _slash(path: Path) -> str:
    return "/" if path.is_dir() else ""


def connection(site: Site, host: Host) -> dict[str, object]:
    return {
        "ansible_host": host.address,
        "ansible_port": host.port,
        "ansible_user": host.user,
        "ansible_python_interpreter": host.python,
        "ansible_ssh_common_args": shlex.join(ssh_options(site, host)),
    }


def inventory(site: Site, prepared: list[Prepared]) -> dict[str, object]:
    """Ansible's inventory: the hosts to deploy (group `deploy`) with the role's variables."""
    hosts = {
        each.host.name: {**connection(site, each.host), "domus": each.role} for each in prepared
    }
    return {"all": {"hosts": hosts, "children": {"deploy": {"hosts": {h: {} for h in hosts}}}}}
