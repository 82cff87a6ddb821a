"""`./domus deploy [HOST...]`: prepare here, run the playbook, say what each host did.

ansible-core runs through its own CLI, `ansible-playbook` from the venv domus runs in: the
playbook and role stay plain Ansible that an operator can read and run by hand against the
inventory written beside them, and domus needs no second API to keep up with. Its output
goes to <output>/deploy/ansible-STAMP.log (the last few kept); the summary comes from a
small callback plugin (ansible/callback_plugins/domus_summary.py) that writes what each host
did as JSON. ansible-playbook and everything it starts run in a process group of their own,
ended with the deploy however it ends (on Linux even by SIGKILL: the parent-death signal),
and the deploy holds its run lock until they are gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tasks.deploy.cause import cause
from tasks.deploy.moves import (
    check_no_state_left_behind,
    confirm,
    hand_over,
    in_flight,
    moves,
    record_placement,
    stamp,
)
from tasks.deploy.retire import add_retiring, forget_retired, retired_there, retiring
from tasks.deploy.ssh import write_known_hosts
from tasks.deploy.stage import Prepared, build_here, deploy_dir, inventory, prepare
from tasks.deploy.unchanged import ask, leave_alone, worth_asking
from tasks.run.errors import EXIT_FAILED, EXIT_OK, DomusError, UsageError, require_known
from tasks.run.locks import hold_run_lock
from tasks.site import Host, Site

ANSIBLE = Path(__file__).resolve().parent / "ansible"
LOGS_KEPT = 5


def select_hosts(site: Site, names: Sequence[str]) -> list[Host]:
    if not site.hosts:
        raise UsageError(
            f"{site.path} has no hosts to deploy to",
            hint="add `hosts:` (each with its address) and `host:` to the domains; "
            "`./domus build` builds for this machine",
        )
    require_known(names, {host.name for host in site.hosts}, "host", site.path)
    return [host for host in site.hosts if not names or host.name in names]


def ansible_playbook() -> Path:
    program = Path(sys.executable).parent / "ansible-playbook"
    if not program.exists():
        raise DomusError(
            f"no ansible-playbook beside {sys.executable}",
            hint="ansible-core is a dependency of domus: `./domus` installs it into its venv",
        )
    if shutil.which("rsync") is None:
        raise DomusError(
            "deploy needs rsync here and on every dom0",
            hint="apt-get install rsync (pkgin install rsync on NetBSD)",
        )
    return program


def run_playbook(
    site: Site,
    prepared: list[Prepared],
    playbook: str = "deploy.yml",
    retire_only: Sequence[Host] = (),
) -> Ran:
    """Run the role on every prepared host at once (and on `retire_only`, hosts left
    without domUs, the retiring of those the site no longer has); what each did."""
    top = deploy_dir(site)
    path = top / "inventory.json"
    hosts = inventory(site, prepared)
    add_retiring(hosts, site, list(retire_only))
    path.write_text(json.dumps(hosts, indent=1))
    results = top / "results.json"
    results.unlink(missing_ok=True)
    env = {
        **os.environ,
        "ANSIBLE_CALLBACK_PLUGINS": str(ANSIBLE / "callback_plugins"),
        "ANSIBLE_CALLBACKS_ENABLED": "domus_summary",
        "ANSIBLE_ROLES_PATH": str(ANSIBLE / "roles"),
        "ANSIBLE_FORKS": str(max(5, len(prepared))),
        "ANSIBLE_RETRY_FILES_ENABLED": "false",
        "ANSIBLE_NOCOLOR": "1",
        # a module runs through the open ssh connection instead of being copied first
        "ANSIBLE_PIPELINING": "true",
        "ANSIBLE_LOCAL_TEMP": str(top / "ansible-tmp"),
        "DOMUS_DEPLOY_RESULTS": str(results),
    }
    log = new_log(top)
    with open(log, "w") as out:
        run_group([str(ansible_playbook()), "-i", str(path), str(ANSIBLE / playbook)], env, out)
    try:
        return Ran(json.loads(results.read_text()), log)
    except (OSError, ValueError):
        raise DomusError(
            "ansible-playbook ended without saying what the hosts did",
            hint=f"its output is in {log}",
        ) from None


@dataclass
class Ran:
    results: dict[str, dict]  # what each host did, by its name
    log: Path


def new_log(top: Path) -> Path:
    """This run's log, ansible-STAMP.log; only the last few are kept."""
    logs = sorted(top.glob("ansible-*.log"))
    for old in logs[: max(0, len(logs) - LOGS_KEPT + 1)]:
        old.unlink(missing_ok=True)
    log = top / f"ansible-{stamp()}.log"
    serial = 1
    while log.exists():  # two runs within a second
        serial += 1
        log = top / f"ansible-{stamp()}-{serial}.log"
    return log


# The first process of a command's group: it ends the whole group (ansible-playbook, its
# workers, their ssh and rsync) when the deploy dies, even by SIGKILL, which Linux tells it
# with the parent-death signal; elsewhere the deploy ends the group on its way out.
GUARD = """
import ctypes, os, signal, subprocess, sys
def end(*_):
    os.killpg(0, signal.SIGKILL)
signal.signal(signal.SIGTERM, end)
if sys.platform.startswith("linux"):
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
if os.getppid() != int(sys.argv[1]):
    end()
sys.exit(subprocess.call(sys.argv[2:]))
"""


def run_group(argv: list[str], env: dict[str, str], out: IO[str]) -> int:
    """Run `argv` in a process group of its own and wait for it; however this ends (a
    signal, an exception, a kill), nothing of the group is left running."""
    process = subprocess.Popen(
        [sys.executable, "-P", "-c", GUARD, str(os.getpid()), *argv],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        process_group=0,
    )
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        return process.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait()
        end_group(process.pid)


def _terminated(number: int, frame: object) -> None:
    raise SystemExit(128 + number)


def end_group(group: int, seconds: float = 10.0) -> None:
    """Stop every process of the group still running and wait until they have all gone."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(group, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.05)
            try:
                os.killpg(group, 0)
            except (ProcessLookupError, PermissionError):
                return


def built_line(output: str) -> str:
    """`3 built, 9 up to date in 1.2 s`: the build's closing line there."""
    found = re.findall(r"^\d+ built, \d+ up to date\b.*$", output, re.M)
    return found[-1] if found else ""


def human_bytes(count: int) -> str:
    from tasks.generations.cli import human_size

    return human_size(count)


def summary(
    prepared: list[Prepared],
    results: dict[str, dict],
    notes: dict[str, list[str]] | None = None,
    log: Path | None = None,
    alone: Collection[str] = (),
) -> tuple[list[str], list[str]]:
    """A line per host (with what its moves came to below it), and the hosts that failed:
    those whose deploy failed, and those a move left unsettled (a note not a refusal).
    The hosts in `alone` were left as their last deploy left them."""
    lines, failed = [], []
    notes = notes or {}
    names = [each.host.name for each in prepared]
    # a host domUs move away from is named too where it is not deployed
    others = [name for name in notes if name not in names]
    width = max(len(name) for name in [*names, *others])
    for name in [*names, *others]:
        each = next((p for p in prepared if p.host.name == name), None)
        result = results.get(name, {})
        problem = None if name in alone else problem_of(each, result)
        if problem is not None:
            failed.append(name)
            lines.append(f"{name:<{width}}  FAILED  {problem}")
            if log is not None and each is not None and each.error is None:
                lines.append(f"{'':<{width}}          (see {log})")
        elif each is None or not each.domus:
            lines.append(f"{name:<{width}}  ok      no domUs")
        elif name in alone:
            lines.append(f"{name:<{width}}  ok      {', '.join(each.domus)}: unchanged")
        else:
            sent, files = result.get("sent", 0), result.get("files", 0)
            lines.append(
                f"{name:<{width}}  ok      {', '.join(each.domus)}: sent {human_bytes(sent)} "
                f"({files} file{'' if files == 1 else 's'}); "
                f"there: {built_line(result['output']['Build'])}"
            )
        rolled = result.get("output", {}).get("Roll forward", "").splitlines()
        lines.extend(f"{'':<{width}}          {line}" for line in rolled)
        lines.extend(f"{'':<{width}}          {line}" for line in retired_there(result))
        for note in notes.get(name, []):
            lines.append(f"{'':<{width}}          {note}")
            if not note.startswith("refused:") and name not in failed:
                failed.append(name)
    return lines, failed


def problem_of(each: Prepared | None, result: dict, last: str = "Build") -> str | None:
    """Why a host failed, if it did, in a line; `last` is the task every host that
    finished ran."""
    if each is not None and each.error is not None:
        return each.error
    if result.get("unreachable"):
        return f"unreachable: {cause(result['unreachable'])}"
    if result.get("failed"):
        task, message = result["failed"]["task"], cause(result["failed"]["message"])
        return f"{task} failed: {message}" if task else message
    if each is not None and each.domus and last not in result.get("output", {}):
        return "did not finish"
    return None


def fetch_downloads(site: Site) -> None:
    """Sets and a kernel given as URLs are downloaded and checked here, once: each host's
    site names the verified copies, which go to the host like any input file."""
    if not site.root.downloads:
        return
    failure = build_here(site.path, ["fetch"])
    if failure is not None:
        raise DomusError(f"downloading the root's sets and kernel failed: {failure}")


def begin(site: Site, names: Sequence[str]) -> list[Host]:
    """The hosts named (all by default), once nothing stands in the way of a deploy or a
    check: no domU's state left behind, Ansible and rsync here, every host key known,
    the downloads done."""
    hosts = select_hosts(site, names)
    check_no_state_left_behind(site)
    ansible_playbook()
    old = {move.old for move in moves(site, [host.name for host in hosts])}
    old |= {entry["old"] for entry in in_flight(site).values()}
    write_known_hosts(site, [*hosts, *(h for h in site.hosts if h.name in old and h not in hosts)])
    # before this run holds the run lock, which the download's own build takes
    fetch_downloads(site)
    return hosts


def keep_others(site: Site, prepared: list[Prepared]) -> None:
    """A host's garbage collection retires only the domUs the site no longer has: one the
    site places elsewhere is moving (or failed to), and its move settles its copy there."""
    for each in prepared:
        each.role["keep"] = sorted(d.name for d in site.domus if d.host != each.host.name)


def deploy(site: Site, names: Sequence[str], serial: int = 0, full: bool = False) -> int:
    """`full`: the playbook on every host, even those whose last deploy still holds."""
    hosts = begin(site, names)
    top = deploy_dir(site)
    top.mkdir(parents=True, exist_ok=True)
    # one deploy of a site at a time, and no build of it here meanwhile
    hold_run_lock(site.layout.locks)
    (top / "results.json").unlink(missing_ok=True)  # this run's, if the playbook runs
    start = time.monotonic()
    # the hosts are asked how their last deploy left them while this machine builds
    with ThreadPoolExecutor(max_workers=1) as pool:
        asking = pool.submit(ask, site, worth_asking(site, hosts, full))
        prepared = [prepare(site, host) for host in hosts]
        keep_others(site, prepared)
        answers = asking.result()
    ready = [each for each in prepared if each.error is None and each.domus]
    alone = leave_alone(site, ready, answers)
    built = time.monotonic()
    visited = {each.host.name for each in ready if each.host.name not in alone}
    moving = [move for move in moves(site, [host.name for host in hosts]) if move.new in visited]
    handed = hand_over(site, moving)
    for each in prepared:
        if each.host.name in handed.failed and each.error is None:
            each.error = "; ".join(handed.failed[each.host.name])
    going = [each for each in ready if each.error is None and each.host.name in visited]
    # a host left without domUs is still visited to retire the ones the site no longer has
    to_retire = retiring(site)
    going += [p for p in prepared if p.error is None and not p.domus and p.host.name in to_retire]
    ran = run_in_batches(site, going, serial)
    results = ran.results if ran else {}
    log = ran.log if ran else None
    done = [
        each.host.name
        for each in prepared
        if each.error is None
        and (each.host.name in alone or problem_of(each, results.get(each.host.name, {})) is None)
    ]
    notes = handed.notes
    for host, more in confirm(site, handed.accepted, set(done)).items():
        notes.setdefault(host, []).extend(more)
    lines, failed = summary(prepared, results, notes, log, alone)
    # the domUs still moving stay where they were until their move is confirmed
    unconfirmed = {n for n, entry in in_flight(site).items() if entry["step"] != "confirmed"}
    deployed = [name for name in done if name not in failed]
    record_placement(site, deployed, unconfirmed)
    forget_retired(site, {name: results.get(name, {}) for name in deployed})
    print("\n".join(lines))
    seconds = time.monotonic() - start
    timing = f"{built - start:.1f} s building here and asking the hosts"
    if ran is not None:
        timing += f", {seconds - built + start:.1f} s Ansible"
    if alone:
        timing = f"{len(alone)} unchanged; {timing}"
    if failed:
        print(
            f"domus: deploy failed on {', '.join(failed)} ({len(prepared) - len(failed)} of "
            f"{len(prepared)} hosts done in {seconds:.1f} s: {timing})"
            + (f"; Ansible's output: {log}" if log else ""),
            file=sys.stderr,
        )
        return EXIT_FAILED
    hosts_done = f"{len(prepared)} host{'' if len(prepared) == 1 else 's'}"
    print(f"deployed {hosts_done} in {seconds:.1f} s ({timing})")
    return EXIT_OK


def run_in_batches(site: Site, ready: list[Prepared], serial: int) -> Ran | None:
    """The playbook on `serial` hosts at a time (all at once for 0), stopping after a batch
    in which a host failed: the hosts after it are marked as not deployed. None when no
    host is to be visited."""
    size = serial or len(ready) or 1
    batches = [ready[start : start + size] for start in range(0, len(ready), size)]
    ran: Ran | None = None
    for index, batch in enumerate(batches):
        this = run_playbook(
            site,
            [each for each in batch if each.domus],
            retire_only=[each.host for each in batch if not each.domus],
        )
        ran = this if ran is None else Ran({**ran.results, **this.results}, this.log)
        if any(problem_of(each, ran.results.get(each.host.name, {})) for each in batch):
            for later in batches[index + 1 :]:
                for each in later:
                    each.error = "not deployed: a host before it failed (--serial)"
            break
    return ran
