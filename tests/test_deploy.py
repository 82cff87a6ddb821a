"""`./domus deploy` with real ssh and real Ansible: three dom0s on this machine (an sshd
each on a loopback port, its own keys and directory), the example site spread across
them. One deployed site is shared by the tests below, which run in file order, each one
starting from what the one before left.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.commands import fake_xl, xl_domain
from tests.dom0s import SSHD, Dom0, start_dom0s
from tests.image_reader import ImageReader
from tests.netbsd_rules import assert_netbsd_accepts
from tests.sites import REPO, Site, example_site

ANSIBLE = Path(sys.executable).parent / "ansible-playbook"
pytestmark = pytest.mark.skipif(
    SSHD is None or shutil.which("rsync") is None or not ANSIBLE.exists(),
    reason="needs sshd (openssh-server), rsync and ansible-core (./domus test installs them)",
)

PLACES = {"www1": "alpha", "www2": "beta", "db1": "gamma"}
ROLE = "{% if name == 'www1' %}web {{ version }}{% else %}other{% endif %}\n"


@dataclass
class Deployed:
    returncode: int
    stdout: str
    stderr: str
    results: dict[str, dict]


class Cluster:
    def __init__(self, top: Path, dom0s: list[Dom0]) -> None:
        self.dom0s = {dom0.name: dom0 for dom0 in dom0s}
        data = example_site()
        # the root tree is a copy (its mtimes kept) that a test may change
        for name in ("tree", "metalog"):
            original = Path(data["root"]["source"][name])
            copy = top / "inputs" / original.name
            copy.parent.mkdir(parents=True, exist_ok=True)
            if original.is_dir():
                shutil.copytree(original, copy, symlinks=True)
            else:
                shutil.copy2(original, copy)
            data["root"]["source"][name] = str(copy)
        self.templates = top / "templates"
        self.set_role("1")
        data["templates"] = str(self.templates)
        data["dom0"] = "linux"
        # local images converge through debugfs: no loop device, any Linux
        data["blockdev"] = {"backend": "none"}
        data["defaults"]["local"]["fs"] = "ext2fs"
        data["domains"]["db1"]["local"]["encrypt"] = "dom0"
        data["hosts"] = {dom0.name: dom0.site_entry() for dom0 in dom0s}
        for name, host in PLACES.items():
            data["domains"][name]["host"] = host
        self.site = Site(top / "site", data)

    def set_role(self, version: str) -> None:
        path = self.templates / "local" / "etc" / "domus-role"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(ROLE.replace("{{ version }}", version))

    def deploy(self, *hosts: str) -> Deployed:
        done = subprocess.run(
            [sys.executable, "-m", "tasks.cli", "deploy", f"config={self.site.path}", *hosts],
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        results_file = self.site.output / "deploy" / "results.json"
        results = json.loads(results_file.read_text()) if results_file.exists() else {}
        return Deployed(done.returncode, done.stdout, done.stderr, results)

    def output(self, host: str) -> Path:
        return self.dom0s[host].output

    def local(self, name: str, host: str | None = None) -> Path:
        return self.output(host or PLACES[name]) / "images" / name / "local.img"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    top = tmp_path_factory.mktemp("deploy")
    dom0s = start_dom0s(top / "dom0s", ["alpha", "beta", "gamma"])
    try:
        cluster = Cluster(top, dom0s)
        first = cluster.deploy()
        assert first.returncode == 0, first.stdout + first.stderr
        cluster.first = first  # type: ignore[attr-defined]
        yield cluster
    finally:
        for dom0 in dom0s:
            dom0.stop()


def digests(top: Path) -> dict[str, str]:
    """Every regular file below `top` by its content (symlinks by their target)."""
    found = {}
    for path in sorted(top.rglob("*")):
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            found[str(path.relative_to(top))] = "-> " + os.readlink(path)
        elif stat.S_ISREG(mode):
            found[str(path.relative_to(top))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def host_images(cluster: Cluster) -> dict[str, dict[str, str]]:
    return {host: digests(cluster.output(host) / "images") for host in cluster.dom0s}


def active_root(output: Path) -> str:
    return os.readlink(output / "images" / "generations" / "active" / "root").rsplit("/", 1)[-1]


def snapshot(output: Path, skip: str = "") -> dict[str, tuple]:
    """Every file below a dom0's output by content and mtime, every link by its target,
    every directory by its name (reading an image makes a scratch directory beside it)."""
    found: dict[str, tuple] = {}
    for path in sorted(output.rglob("*")):
        name = str(path.relative_to(output))
        if skip and (name == skip or name.startswith(skip + "/")):
            continue
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            found[name] = ("link", os.readlink(path))
        elif stat.S_ISDIR(st.st_mode):
            found[name] = ("dir",)
        else:
            found[name] = (st.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
    return found


def ansible_logs(cluster: Cluster) -> set[Path]:
    return set((cluster.site.output / "deploy").glob("ansible-*.log"))


def logins(dom0: Dom0) -> int:
    """The ssh connections its sshd accepted so far."""
    return (dom0.directory / "sshd.log").read_text().count("Accepted publickey")


def close_shared_connections(cluster: Cluster) -> None:
    """The connections rsync and the round trip share stay open a while after a deploy;
    closed, the next deploy's connections are its own."""
    for socket in (cluster.site.output / "deploy" / "ssh").iterdir():
        subprocess.run(
            ["ssh", "-o", f"ControlPath={socket}", "-O", "exit", "domus"], capture_output=True
        )


def test_each_domu_is_built_on_its_host_with_its_paths_and_keys(cluster: Cluster) -> None:
    first = cluster.first  # type: ignore[attr-defined]
    for name, host in PLACES.items():
        assert f"{host:<5}  ok      {name}: sent " in first.stdout, first.stdout
    controller = cluster.site.output / "deploy"
    for host, output in ((host, cluster.output(host)) for host in cluster.dom0s):
        names = {name for name, place in PLACES.items() if place == host}
        domus = {p.name for p in (output / "images").iterdir() if p.is_dir()} - {"generations"}
        assert domus == names
        assert {p.stem for p in (output / "xen").glob("*.cfg")} == names
        for name in names:
            config = (output / "xen" / f"{name}.cfg").read_text()
            assert f"target={output}/images/{name}/local.img" in config
            assert f'kernel = "{output}/images/netbsd-XEN3_DOMU"' in config
        # the root generation is the one built here, shipped: not built again there
        here = controller / host / "build"
        assert active_root(output) == active_root(here)
        generation = Path("images/generations/active/root/generation.json")
        assert (output / generation).read_bytes() == (here / generation).read_bytes()
    # db1's key goes to gamma, private, and to no other host
    keys = {
        host: sorted(os.listdir(cluster.output(host) / "deploy" / "keys"))
        for host in PLACES.values()
    }
    assert keys == {"alpha": [], "beta": [], "gamma": ["db1-local.params"]}
    key = cluster.output("gamma") / "deploy" / "keys" / "db1-local.params"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_bytes() == (cluster.site.directory / "keys" / "db1-local.params").read_bytes()
    local = cluster.local("www1")
    assert ImageReader(local, "ext2fs").text("etc/domus-role") == "web 1\n"
    assert_netbsd_accepts(local, "ext2fs")
    assert_netbsd_accepts(cluster.output("alpha") / "images" / "root.img", "ffs")


def test_a_second_deploy_leaves_every_host_alone_after_one_connection_each(
    cluster: Cluster,
) -> None:
    before = {host: snapshot(cluster.output(host)) for host in cluster.dom0s}
    logs = ansible_logs(cluster)
    close_shared_connections(cluster)
    connections = {host: logins(dom0) for host, dom0 in cluster.dom0s.items()}
    again = cluster.deploy()
    assert again.returncode == 0, again.stdout + again.stderr
    for name, host in PLACES.items():
        assert f"{host:<5}  ok      {name}: unchanged\n" in again.stdout, again.stdout
    assert "(3 unchanged; " in again.stdout and "Ansible" not in again.stdout, again.stdout
    # no playbook ran: no log of one, no results, nothing changed there
    assert ansible_logs(cluster) == logs
    assert again.results == {}
    assert {host: snapshot(cluster.output(host)) for host in cluster.dom0s} == before
    # one ssh connection to each host: the round trip that read its record
    assert {host: logins(dom0) - connections[host] for host, dom0 in cluster.dom0s.items()} == {
        host: 1 for host in cluster.dom0s
    }


def test_full_runs_the_playbook_on_every_host_and_sends_nothing(cluster: Cluster) -> None:
    before = host_images(cluster)
    full = cluster.deploy("--full")
    assert full.returncode == 0, full.stdout + full.stderr
    assert "unchanged" not in full.stdout, full.stdout
    assert set(full.results) == set(cluster.dom0s)
    for host in cluster.dom0s:
        result = full.results[host]
        assert result["files"] == 0, result
        assert result["changed"] == [], result
        assert "0 built" in result["output"]["Build"]
    assert host_images(cluster) == before
    assert "(3 unchanged; " in cluster.deploy().stdout


def test_a_template_change_converges_only_the_domus_it_changes(cluster: Cluster) -> None:
    before = host_images(cluster)
    cluster.set_role("2")
    changed = cluster.deploy()
    assert changed.returncode == 0, changed.stdout + changed.stderr
    assert ImageReader(cluster.local("www1"), "ext2fs").text("etc/domus-role") == "web 2\n"
    assert_netbsd_accepts(cluster.local("www1"), "ext2fs")
    after = host_images(cluster)
    for name in ("www2", "db1"):
        key = f"{name}/local.img"
        assert after[PLACES[name]][key] == before[PLACES[name]][key], name
    assert after["alpha"]["www1/local.img"] != before["alpha"]["www1/local.img"]
    # the template is an input there: shipped once, to every host, each of which runs
    for host in cluster.dom0s:
        assert changed.results[host]["files"] == 1, changed.results[host]


def test_a_change_to_one_domu_runs_the_playbook_on_its_host_alone(cluster: Cluster) -> None:
    cluster.site.data["domains"]["www2"]["memory"] = "320m"
    cluster.site.save()
    changed = cluster.deploy()
    assert changed.returncode == 0, changed.stdout + changed.stderr
    assert set(changed.results) == {"beta"}
    assert "alpha  ok      www1: unchanged" in changed.stdout, changed.stdout
    assert "gamma  ok      db1: unchanged" in changed.stdout, changed.stdout
    assert "memory = 320" in (cluster.output("beta") / "xen" / "www2.cfg").read_text()


def test_a_root_change_ships_one_new_generation_to_each_host(cluster: Cluster) -> None:
    readme = Path(cluster.site.data["root"]["source"]["tree"]) / "usr" / "bin" / "README"
    readme.write_text(readme.read_text() + "changed for a deploy test\n")
    old = {host: active_root(cluster.output(host)) for host in cluster.dom0s}
    changed = cluster.deploy()
    assert changed.returncode == 0, changed.stdout + changed.stderr
    for host in cluster.dom0s:
        output = cluster.output(host)
        new = active_root(output)
        assert new != old[host]
        roots = sorted(p.name for p in (output / "images" / "generations" / "root").iterdir())
        assert roots == sorted({old[host], new})
        # the tree and the generation: the README and nothing but the new root.img
        assert changed.results[host]["files"] == 4, changed.results[host]
        reader = ImageReader(output / "images" / "root.img", "ffs")
        assert reader.text("usr/bin/README").endswith("changed for a deploy test\n")


def test_a_host_that_is_down_fails_alone(cluster: Cluster) -> None:
    cluster.dom0s["beta"].stop()
    try:
        cluster.set_role("3")
        down = cluster.deploy()
    finally:
        cluster.dom0s["beta"].start()
    assert down.returncode == 1
    assert "beta   FAILED  unreachable" in down.stdout, down.stdout
    assert "domus: deploy failed on beta (2 of 3 hosts done" in down.stderr
    assert "alpha  ok      www1" in down.stdout and "gamma  ok      db1" in down.stdout
    assert ImageReader(cluster.local("www1"), "ext2fs").text("etc/domus-role") == "web 3\n"


def test_a_running_domu_is_not_moved(cluster: Cluster) -> None:
    local = cluster.local("www2")
    before = digests(local.parent)
    fake_xl(cluster.dom0s["beta"].bin, [xl_domain("www2", local)], {"www2": 60})
    cluster.site.data["domains"]["www2"]["host"] = "alpha"
    cluster.site.save()
    try:
        refused = cluster.deploy()
    finally:
        (cluster.dom0s["beta"].bin / "xl").unlink()
    assert refused.returncode == 1
    assert "beta   ok      no domUs\n" in refused.stdout, refused.stdout
    assert "refused: www2 runs on beta: shut it down there before it moves to alpha" in (
        refused.stdout
    )
    assert "alpha  FAILED  www2 moves here from beta, but its local.img could not be taken" in (
        refused.stdout
    )
    assert "gamma  ok" in refused.stdout
    assert digests(local.parent) == before
    assert not cluster.local("www2", "alpha").exists()


def test_a_domu_moves_with_its_state(cluster: Cluster) -> None:
    old = cluster.local("www2", "beta")
    state = hashlib.sha256(old.read_bytes()).hexdigest()
    moved = cluster.deploy()
    assert moved.returncode == 0, moved.stdout + moved.stderr
    new = cluster.local("www2", "alpha")
    assert hashlib.sha256(new.read_bytes()).hexdigest() == state
    assert "0 built" not in moved.results["alpha"]["output"]["Build"]
    config = (cluster.output("alpha") / "xen" / "www2.cfg").read_text()
    assert f"target={cluster.output('alpha')}/images/www2/local.img" in config
    # the old host keeps it as a dated backup, and no longer starts it
    assert not old.exists()
    assert not (cluster.output("beta") / "xen" / "www2.cfg").exists()
    (backup,) = (cluster.output("beta") / "images").glob("www2.moved-*")
    assert hashlib.sha256((backup / "local.img").read_bytes()).hexdigest() == state
    placement = json.loads((cluster.site.output / "deploy" / "placement.json").read_text())
    assert placement == {"www1": "alpha", "www2": "alpha", "db1": "gamma"}
    assert_netbsd_accepts(new, "ext2fs")


def domus_command(cluster: Cluster, *words: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tasks.cli", *words, f"config={cluster.site.path}"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )


def test_check_runs_the_new_sites_status_on_each_host_and_changes_nothing(
    cluster: Cluster,
) -> None:
    before = {host: snapshot(cluster.output(host), "deploy/check") for host in cluster.dom0s}
    cluster.set_role("4")
    checked = domus_command(cluster, "deploy", "--check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    lines = checked.stdout.splitlines()
    alpha = lines[lines.index("alpha:") + 1 : lines.index("beta:")]
    gamma = lines[lines.index("gamma:") + 1 :]
    assert alpha[:2] == ["  send 1 file of domus and the inputs", "  generations: all there"]
    assert lines[lines.index("beta:") + 1] == "  no domUs"
    # what the build of the new site there would do: a converge of every local image the
    # template is an input of, and nothing else
    changed = "local: converge (template local/etc/domus-role changed; converged "
    for host, names in (("alpha", ("www1", "www2")), ("gamma", ("db1",))):
        said = alpha if host == "alpha" else gamma
        assert [line.split(" (")[0] for line in said[2:]] == [
            f"  {name} local: converge" for name in names
        ], said
        assert all(any(line.startswith(f"  {n} {changed}") for line in said) for n in names)
    # the new site, domus and inputs were sent beside what the host runs, which is as it was
    for host in cluster.dom0s:
        assert snapshot(cluster.output(host), "deploy/check") == before[host]
    check = cluster.output("alpha") / "deploy" / "check"
    role = check / "inputs" / "3" / "templates" / "local" / "etc" / "domus-role"
    assert "web 4" in role.read_text()
    deployed = cluster.output("alpha") / "deploy" / "inputs" / "3" / "templates"
    assert "web 4" not in (deployed / "local" / "etc" / "domus-role").read_text()


def test_generations_and_rollback_on_one_host(cluster: Cluster) -> None:
    output = cluster.output("gamma")
    active = active_root(output)
    (older,) = {p.name for p in (output / "images" / "generations" / "root").iterdir()} - {active}
    listed = domus_command(cluster, "generations", "root", "--host", "gamma")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert listed.stdout.splitlines()[0] == "root:"
    assert f"* {active}" in listed.stdout and f"  {older}" in listed.stdout
    others = {host: active_root(cluster.output(host)) for host in ("alpha", "beta")}
    rolled = domus_command(cluster, "rollback", "root", "--host", "gamma")
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert active_root(output) == older
    assert {host: active_root(cluster.output(host)) for host in ("alpha", "beta")} == others
    unknown = domus_command(cluster, "rollback", "root", "--host", "delta")
    assert unknown.returncode == 2
    assert "no host named delta" in unknown.stderr


def test_a_deploy_rolls_forward_a_host_rolled_back_since(cluster: Cluster) -> None:
    output = cluster.output("gamma")
    wanted = active_root(cluster.site.output / "deploy" / "gamma" / "build")
    older = active_root(output)
    assert older != wanted
    # the template changed for the check above: every host runs
    settled = cluster.deploy()
    assert settled.returncode == 0, settled.stdout + settled.stderr
    assert active_root(output) == wanted
    assert f"root: generation {wanted} active again, was {older}" in settled.stdout
    rolled = domus_command(cluster, "rollback", "root", "--host", "gamma")
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert active_root(output) == older
    # gamma alone changed since: it alone runs, and is what the site says again
    forward = cluster.deploy()
    assert forward.returncode == 0, forward.stdout + forward.stderr
    assert set(forward.results) == {"gamma"}, forward.stdout
    assert "alpha  ok      www1, www2: unchanged" in forward.stdout, forward.stdout
    assert active_root(output) == wanted
    assert "(2 unchanged; " in cluster.deploy().stdout  # beta has no domUs now


# -- a move's hand-over, whatever stops it ----------------------------------------------------
# www2 is on alpha now; each test below tries to take it to beta and checks that exactly one
# host offers it (its xl config) with its newest state, whatever stopped the move.


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def offering(cluster: Cluster, name: str) -> list[str]:
    return [
        host for host in cluster.dom0s if (cluster.output(host) / "xen" / f"{name}.cfg").exists()
    ]


def newest_state(cluster: Cluster, text: str) -> str:
    """What www2 wrote on alpha since it got there: its local.img's sha256 now."""
    local = cluster.local("www2", "alpha")
    note = local.parent.parent / "state.txt"
    note.write_text(text)
    subprocess.run(
        ["debugfs", "-w", "-R", f"write {note} state-{len(text)}", str(local)],
        check=True,
        capture_output=True,
    )
    note.unlink()
    return sha256(local)


def placed(cluster: Cluster) -> dict[str, str]:
    return json.loads((cluster.site.output / "deploy" / "placement.json").read_text())


def stays_on_alpha(cluster: Cluster, deployed: Deployed, state: str) -> None:
    assert deployed.returncode == 1, deployed.stdout + deployed.stderr
    assert "Traceback" not in deployed.stderr and "unexpected" not in deployed.stderr
    assert offering(cluster, "www2") == ["alpha"]
    assert sha256(cluster.local("www2", "alpha")) == state
    assert not (cluster.output("alpha") / "xen" / "www2.cfg.released").exists()
    assert not list((cluster.output("alpha") / "images").glob("www2.moved-*"))
    assert not (cluster.output("beta") / "images" / "www2").exists()
    assert placed(cluster)["www2"] == "alpha"
    journal = cluster.site.output / "deploy" / "moves.json"
    assert not journal.exists() or json.loads(journal.read_text())["moves"] == {}


def test_a_move_refused_while_the_domu_runs_changes_nothing_on_any_host(cluster: Cluster) -> None:
    local = cluster.local("www2", "alpha")
    state = newest_state(cluster, "on alpha")
    fake_xl(cluster.dom0s["alpha"].bin, [xl_domain("www2", local)], {"www2": 60})
    cluster.site.data["domains"]["www2"]["host"] = "beta"
    cluster.site.save()
    try:
        refused = cluster.deploy()
    finally:
        (cluster.dom0s["alpha"].bin / "xl").unlink()
    assert "refused: www2 runs on alpha: shut it down there before it moves to beta" in (
        refused.stdout
    ), refused.stdout
    stays_on_alpha(cluster, refused, state)


def test_a_move_from_a_host_that_is_down_waits_for_it(cluster: Cluster) -> None:
    state = sha256(cluster.local("www2", "alpha"))
    cluster.dom0s["alpha"].stop()
    try:
        down = cluster.deploy()
    finally:
        cluster.dom0s["alpha"].start()
    assert "beta   FAILED  www2 stays on alpha, its move here failed: alpha: " in down.stdout
    assert "Connection refused" in down.stdout, down.stdout
    stays_on_alpha(cluster, down, state)


def test_a_full_disk_on_the_new_host_leaves_the_domu_offered_on_the_old_one(
    cluster: Cluster,
) -> None:
    state = sha256(cluster.local("www2", "alpha"))
    # rsync's receiver there, as it fails on a full file system: the cause, then statistics
    full = cluster.dom0s["beta"].bin / "rsync"
    full.write_text(
        "#!/bin/sh\n"
        'echo "rsync: [receiver] write failed on \\"x\\": No space left on device (28)" >&2\n'
        'echo "rsync error: error in file IO (code 11) at receiver.c(380)" >&2\n'
        "exit 11\n"
    )
    full.chmod(0o755)
    try:
        failed = cluster.deploy()
    finally:
        full.unlink()
    line = next(line for line in failed.stdout.splitlines() if line.startswith("beta "))
    assert "No space left on device" in line, failed.stdout
    stays_on_alpha(cluster, failed, state)
    # the buffer here stays for the next try, which sends only what it lacks
    assert sha256(cluster.site.output / "deploy" / "moves" / "www2" / "local.img") == state


def ansible_processes(cluster: Cluster) -> list[int]:
    inventory = str(cluster.site.output / "deploy" / "inventory.json").encode()
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and inventory in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            pass
    return found


def test_a_move_killed_in_the_build_resumes_and_ends_on_one_host(cluster: Cluster) -> None:
    state = newest_state(cluster, "on alpha, newest")
    top = cluster.site.output / "deploy"
    before = set(top.glob("ansible-*.log"))
    deploy = subprocess.Popen(
        [sys.executable, "-m", "tasks.cli", "deploy", f"config={cluster.site.path}"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and deploy.poll() is None:
            logs = set(top.glob("ansible-*.log")) - before
            if logs and "Build]" in next(iter(logs)).read_text():
                break
            time.sleep(0.1)
        deploy.kill()
    finally:
        deploy.wait()
    assert deploy.returncode == -9
    # ansible-playbook and what it started end with the deploy
    deadline = time.monotonic() + 20
    while ansible_processes(cluster) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ansible_processes(cluster) == []
    # released on alpha, taken in by beta: alpha offers it no more
    assert "alpha" not in offering(cluster, "www2")
    assert placed(cluster)["www2"] == "alpha"
    # the next deploy resumes it; alpha, down, cannot archive its copy yet
    cluster.dom0s["alpha"].stop()
    try:
        resumed = cluster.deploy()
    finally:
        cluster.dom0s["alpha"].start()
    assert resumed.returncode == 1, resumed.stdout + resumed.stderr
    assert "www2 moved to beta, but alpha keeps it released" in resumed.stdout, resumed.stdout
    assert "Traceback" not in resumed.stderr and "unexpected" not in resumed.stderr
    assert offering(cluster, "www2") == ["beta"]
    assert placed(cluster)["www2"] == "beta"
    assert sha256(cluster.local("www2", "beta")) == state
    assert not (top / "moves" / "www2").exists()
    # and the one after archives it there
    done = cluster.deploy()
    assert done.returncode == 0, done.stdout + done.stderr
    assert offering(cluster, "www2") == ["beta"]
    assert sha256(cluster.local("www2", "beta")) == state
    (archive,) = (cluster.output("alpha") / "images").glob("www2.moved-*")
    assert sha256(archive / "local.img") == state
    assert stat.S_IMODE((archive / "local.img").stat().st_mode) == 0o600
    assert stat.S_IMODE(archive.stat().st_mode) == 0o700
    assert not (cluster.output("alpha") / "xen" / "www2.cfg.released").exists()
    assert json.loads((top / "moves.json").read_text())["moves"] == {}
    assert len(list(top.glob("ansible-*.log"))) <= 5


def test_activate_pin_and_unpin_on_one_host(cluster: Cluster) -> None:
    output = cluster.output("gamma")
    state = output / "images" / "generations" / "slots" / "root.json"
    current = active_root(output)
    (other,) = {p.name for p in (output / "images" / "generations" / "root").iterdir()} - {current}
    others = {host: active_root(cluster.output(host)) for host in ("alpha", "beta")}
    activated = domus_command(cluster, "activate", "root", other[:8], "--host", "gamma")
    assert activated.returncode == 0, activated.stdout + activated.stderr
    assert f"root: generation {other} active" in activated.stdout
    assert active_root(output) == other
    pinned = domus_command(cluster, "pin", "root", "--host", "gamma")
    assert pinned.returncode == 0, pinned.stdout + pinned.stderr
    assert json.loads(state.read_text())["pinned"] is True
    listed = domus_command(cluster, "generations", "--host", "gamma")
    assert "root (pinned):" in listed.stdout, listed.stdout
    unpinned = domus_command(cluster, "unpin", "root", "--host", "gamma")
    assert unpinned.returncode == 0, unpinned.stdout + unpinned.stderr
    assert json.loads(state.read_text())["pinned"] is False
    assert {host: active_root(cluster.output(host)) for host in ("alpha", "beta")} == others
    # the changes were there: here, nothing of gamma's was touched
    assert not (cluster.site.output / "images" / "generations" / "slots" / "root.json").exists()


def test_a_rolling_deploy_stops_after_the_first_host_that_fails(cluster: Cluster) -> None:
    cluster.set_role("5")
    cluster.dom0s["alpha"].stop()
    try:
        stopped = domus_command(cluster, "deploy", "--serial", "1")
    finally:
        cluster.dom0s["alpha"].start()
    assert stopped.returncode == 1
    assert "alpha  FAILED  unreachable" in stopped.stdout, stopped.stdout
    assert "gamma  FAILED  not deployed: a host before it failed (--serial)" in stopped.stdout
    inventory = json.loads((cluster.site.output / "deploy" / "inventory.json").read_text())
    assert "gamma" not in inventory["all"]["hosts"]
    logs = set((cluster.site.output / "deploy").glob("ansible-*.log"))
    rolling = domus_command(cluster, "deploy", "--serial", "1")
    assert rolling.returncode == 0, rolling.stdout + rolling.stderr
    assert "alpha  ok" in rolling.stdout and "gamma  ok" in rolling.stdout
    # one batch after the other, each an ansible-playbook run with a log of its own
    new = set((cluster.site.output / "deploy").glob("ansible-*.log")) - logs
    assert len(new) >= 2 and all("PLAY RECAP" in log.read_text() for log in new), new
    assert ImageReader(cluster.local("www1"), "ext2fs").text("etc/domus-role") == "web 5\n"


def test_a_deploy_retires_the_domus_the_site_no_longer_has(cluster: Cluster) -> None:
    placed = json.loads((cluster.site.output / "deploy" / "placement.json").read_text())
    states = {name: digests(cluster.local(name, placed[name]).parent) for name in ("www2", "db1")}
    for name in ("www2", "db1"):
        del cluster.site.data["domains"][name]
    cluster.site.save()
    checked = domus_command(cluster, "deploy", "--check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    lines = checked.stdout.splitlines()
    retire = "  retire {} (no longer in the site): its local.img and xl config kept there as "
    for name in ("www2", "db1"):
        line = retire.format(name) + f"images/{name}.retired-STAMP"
        assert line in lines, lines
        assert lines.index(f"{placed[name]}:") < lines.index(line)
        assert cluster.local(name, placed[name]).exists()
    deployed = cluster.deploy()
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    # a host that keeps other domUs retires in its deploy; one left without domUs (db1's
    # gamma) is visited for that alone
    for name, host in (("www2", placed["www2"]), ("db1", placed["db1"])):
        images = cluster.output(host) / "images"
        (archive,) = images.glob(f"{name}.retired-*")
        assert f"retired {name}: {archive}" in deployed.stdout, deployed.stdout
        assert stat.S_IMODE(archive.stat().st_mode) == 0o700
        assert (archive / f"{name}.cfg").exists()
        assert not (cluster.output(host) / "xen" / f"{name}.cfg").exists()
        assert not (images / name).exists()
        kept = digests(archive)
        assert kept["local.img"] == states[name]["local.img"]
    assert cluster.local("www1").exists()
    placement = json.loads((cluster.site.output / "deploy" / "placement.json").read_text())
    assert placement == {"www1": "alpha"}
    again = domus_command(cluster, "deploy", "--check")
    assert "retire" not in again.stdout, again.stdout
