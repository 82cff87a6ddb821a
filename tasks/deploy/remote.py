"""`./domus generations|rollback ... --host NAME`: the command run by the domus on one dom0,
with the site deployed there, through Ansible (its ad-hoc `ansible` CLI): what it prints
is printed here, and its exit status is this command's."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import PurePosixPath

from tasks.deploy.run import ansible_playbook, select_hosts
from tasks.deploy.ssh import write_known_hosts
from tasks.deploy.stage import connection, deploy_dir
from tasks.run.errors import EXIT_FAILED, DomusError
from tasks.site import Site

# `NAME | CHANGED | rc=N >>` heads the output of an ad-hoc command
HEAD = re.compile(r"^\S+ \| (?:CHANGED|SUCCESS|FAILED)(?: \| rc=(-?\d+))? >>$")


def on_host(site: Site, name: str, words: Sequence[str]) -> int:
    (host,) = select_hosts(site, [name])
    write_known_hosts(site, [host])
    deploy = PurePosixPath(host.output) / "deploy"
    argv = [
        "env",
        f"PYTHONPATH={deploy / 'domus'}",
        str(deploy / "venv" / "bin" / "python"),
        "-P",
        "-m",
        "tasks.cli",
        *words,
        f"config={deploy / 'site.yaml'}",
    ]
    top = deploy_dir(site)
    top.mkdir(parents=True, exist_ok=True)
    inventory = top / f"inventory-{name}.json"
    inventory.write_text(json.dumps({"all": {"hosts": {name: connection(site, host)}}}, indent=1))
    program = ansible_playbook().with_name("ansible")
    done = subprocess.run(
        [
            str(program),
            name,
            "-i",
            str(inventory),
            "-m",
            "ansible.builtin.command",
            "-a",
            json.dumps({"argv": argv}),
        ],
        env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_PIPELINING": "true"},
        capture_output=True,
        text=True,
        check=False,
    )
    lines = done.stdout.splitlines()
    head = HEAD.match(lines[0]) if lines else None
    if head is None:
        raise DomusError(
            f"could not run `domus {' '.join(words)}` on {name}: "
            + ((done.stdout + done.stderr).strip().splitlines() or ["no output"])[0],
            hint="is it reachable, and deployed (`./domus deploy " + name + "`)?",
        )
    print("\n".join(lines[1:]))
    if done.stderr.strip():
        print(done.stderr.strip(), file=sys.stderr)
    return int(head.group(1)) if head.group(1) is not None else EXIT_FAILED
