"""Which hosts a deploy can leave alone, known from one ssh round trip to each.

Here, a host's digest covers everything a deploy would send it: its role's variables (its
site, the generations it gets, the versions of its venv, the domUs it keeps, the
generation each slot should have), how it is reached, the domus tree and the inputs by the
size, mtime and mode of every file (what rsync compares), the keys by their content. At
the end of every successful deploy the host records that digest with the state the deploy
left it in (tasks.deploy.settled). A deploy asks each host for both and for its state now,
over one ssh connection (the one rsync shares, tasks.deploy.ssh), and leaves alone a host
whose record holds: the same digest, the same state. A host with a move or a retirement
to do, one that cannot be asked, and one whose state changed since (a rollback there, an
image removed) gets the playbook; so does every host with `--full`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import stat
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tasks.deploy import settled
from tasks.deploy.moves import in_flight, moves
from tasks.deploy.retire import retiring
from tasks.deploy.ssh import rsh
from tasks.deploy.stage import REPO, SHIPPED, Prepared, connection
from tasks.site import Host, Site
from tasks.sources.fingerprint import tree_fingerprint

VERSION = 1
ASK_SECONDS = 60


def digest(site: Site, each: Prepared) -> str:
    """Everything a deploy sends the host, as this machine has it now."""
    # with the domUs of the other hosts (`keep`): one that leaves the site is let go of by
    # the garbage collection of every host it was ever on (its pkg.img's slot there)
    role = {key: value for key, value in each.role.items() if key not in ("digest", "forward")}
    described = {"version": VERSION, "role": role, "connection": connection(site, each.host)}
    h = hashlib.sha256(json.dumps(described, sort_keys=True).encode())
    for name in SHIPPED:
        h.update(f"domus {name} {_code(REPO / name)}\n".encode())
    for path in each.inputs:
        h.update(f"input {path} {_input(path)}\n".encode(errors="surrogateescape"))
    for key in role.get("keys", []):
        content = hashlib.sha256(Path(key["src"]).read_bytes()).hexdigest()
        h.update(f"key {key['name']} {content}\n".encode())
    return h.hexdigest()


def _input(path: Path) -> str:
    if path.is_dir():
        return tree_fingerprint(path)
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_mode}"


def _code(path: Path) -> str:
    """The domus tree as rsync sends it: without Python's byte code, whose coming and going
    changes its directories' mtimes here."""
    if not path.is_dir():
        st = path.stat()
        return f"{st.st_size}:{st.st_mtime_ns}:{st.st_mode}"
    h = hashlib.sha256()
    for parent, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in [*dirs, *sorted(files)]:
            full = os.path.join(parent, name)
            st = os.lstat(full)
            below = os.path.relpath(full, path)
            if stat.S_ISLNK(st.st_mode):
                h.update(f"{below}\0->{os.readlink(full)}\n".encode(errors="surrogateescape"))
            elif stat.S_ISDIR(st.st_mode):
                h.update(f"{below}\0dir\n".encode(errors="surrogateescape"))
            else:
                line = f"{below}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_mode}\n"
                h.update(line.encode(errors="surrogateescape"))
    return h.hexdigest()


def pending(site: Site) -> dict[str, str]:
    """host name -> the work a deploy has there beyond its own site: a move into or out of
    it (to start or unfinished), a domU to retire."""
    found: dict[str, str] = {}
    for move in moves(site, [host.name for host in site.hosts]):
        found.setdefault(move.new, f"{move.name} moves here from {move.old}")
        found.setdefault(move.old, f"{move.name} moves to {move.new}")
    for name, entry in in_flight(site).items():
        for host in (entry["new"], entry["old"]):
            found.setdefault(host, f"the move of {name} is unfinished")
    for host, names in retiring(site).items():
        found.setdefault(host, f"{', '.join(names)} to retire")
    return found


def ask(site: Site, hosts: list[Host]) -> dict[str, dict | None]:
    """What each host recorded of its last deploy and its state now (settled.read); None for
    a host that could not say."""
    script = Path(settled.__file__).read_text()

    def one(host: Host) -> dict | None:
        argv = [
            *shlex.split(rsh(site, host)),
            f"{host.user}@{host.address}",
            shlex.join([host.python, "-", "read", host.output]),
        ]
        try:
            done = subprocess.run(
                argv, input=script, capture_output=True, text=True, timeout=ASK_SECONDS
            )
            answer = json.loads(done.stdout) if done.returncode == 0 else None
        except (subprocess.TimeoutExpired, ValueError):
            return None
        return answer if isinstance(answer, dict) else None

    if not hosts:
        return {}
    with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
        answers = list(pool.map(one, hosts))
    return {host.name: answer for host, answer in zip(hosts, answers, strict=True)}


def holds(answer: dict | None, digest: str) -> bool:
    """Whether the host is as its last deploy left it, and that deploy sent what this one
    would."""
    return (
        answer is not None
        and answer.get("digest") == digest
        and answer.get("state") is not None
        and answer.get("state") == answer.get("now")
    )


def worth_asking(site: Site, hosts: list[Host], full: bool) -> list[Host]:
    """The hosts a deploy might leave alone: none with `--full`, nor one with work to do
    beyond its own site or without domUs."""
    if full:
        return []
    busy = pending(site)
    return [host for host in hosts if host.name not in busy and site.domus_on(host.name)]


def leave_alone(site: Site, ready: list[Prepared], answers: dict[str, dict | None]) -> set[str]:
    """The names of the hosts in `ready` whose last deploy holds, by their `answers` to
    `ask`; every host's role gets its digest (which its run records) and the slots to roll
    forward there."""
    alone = set()
    for each in ready:
        each.role["digest"] = digest(site, each)
        answer = answers.get(each.host.name)
        if holds(answer, str(each.role["digest"])):
            alone.add(each.host.name)
        there = answer.get("active", {}) if answer is not None else {}
        wanted: dict[str, str] = each.role["active"]  # type: ignore[assignment]
        each.role["forward"] = [
            f"{slot}={generation}"
            for slot, generation in sorted(wanted.items())
            if there.get(slot) != generation
        ]
    return alone
