"""How deploy talks to a dom0: only to the host key the site pins or the operator trusted,
nothing forwarded, its shared connections in a private directory. Real sshd, real ssh."""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tasks.deploy.ssh import known_hosts, rsh, ssh_options, write_known_hosts
from tasks.run.errors import SiteError
from tasks.site import load_site
from tests.commands import domus
from tests.dom0s import SSHD, Dom0, start_dom0s
from tests.sites import Site, example_site

needs_sshd = pytest.mark.skipif(SSHD is None, reason="needs sshd (./domus test installs it)")


def hosts_site(tmp_path: Path, dom0s: list[Dom0], pin: bool) -> Site:
    data = example_site()
    data["dom0"] = "linux"
    data["hosts"] = {}
    for dom0 in dom0s:
        entry = dom0.site_entry()
        if not pin:
            del entry["host_key"]
        data["hosts"][dom0.name] = entry
    data["defaults"]["host"] = dom0s[0].name
    return Site(tmp_path / "site", data)


@pytest.fixture
def alpha(tmp_path: Path) -> Iterator[Dom0]:
    (dom0,) = start_dom0s(tmp_path / "dom0s", ["alpha"])
    try:
        yield dom0
    finally:
        dom0.stop()


def over_ssh(site: Site, command: str = "echo reached") -> subprocess.CompletedProcess[str]:
    """`command` on the site's one host, through the ssh command rsync is given."""
    loaded = load_site(site.path)
    (host,) = loaded.hosts
    write_known_hosts(loaded, [host])
    argv = [*shlex.split(rsh(loaded, host)), f"{host.user}@{host.address}", command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def fingerprint_of(public_key: Path) -> str:
    done = subprocess.run(["ssh-keygen", "-l", "-f", str(public_key)], capture_output=True)
    return done.stdout.decode().split()[1]


def test_ssh_checks_the_key_strictly_and_forwards_nothing(tmp_path: Path) -> None:
    data = example_site()
    data["hosts"] = {"alpha": {"address": "192.0.2.1", "host_key": "ssh-ed25519 AAAA"}}
    data["defaults"]["host"] = "alpha"
    site = load_site(Site(tmp_path / "site", data).path)
    options = " ".join(ssh_options(site, site.hosts[0]))
    assert "StrictHostKeyChecking=yes" in options
    assert "accept-new" not in options
    for wanted in ("ForwardAgent=no", "ForwardX11=no", "HostKeyAlias=domus-alpha"):
        assert wanted in options


def test_control_sockets_live_in_a_private_directory_of_the_output() -> None:
    data = example_site()
    data["hosts"] = {"alpha": {"address": "192.0.2.1", "host_key": "ssh-ed25519 AAAA"}}
    data["defaults"]["host"] = "alpha"
    # a short path, as /var/domus is: a socket's path has a length limit
    top = Path(tempfile.mkdtemp(prefix="s"))
    site = load_site(Site(top / "s", data).path)
    old = os.umask(0)
    try:
        command = rsh(site, site.hosts[0])
    finally:
        os.umask(old)
    (path,) = [word for word in shlex.split(command) if word.startswith("ControlPath=")]
    directory = Path(path.removeprefix("ControlPath=")).parent
    assert directory == site.output / "deploy" / "ssh"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert not str(directory).startswith("/tmp/domus-ssh")
    shutil.rmtree(top)


def test_an_output_too_deep_for_a_socket_shares_no_connection(tmp_path: Path) -> None:
    data = example_site()
    data["hosts"] = {"alpha": {"address": "192.0.2.1", "host_key": "ssh-ed25519 AAAA"}}
    data["defaults"]["host"] = "alpha"
    data["output"] = str(tmp_path / ("d" * 100))
    site = load_site(Site(tmp_path / "s", data).path)
    command = rsh(site, site.hosts[0])
    assert "ControlPath=none" in command and "ControlMaster=no" in command


def test_a_host_key_that_is_not_an_ssh_key_is_refused_at_load(tmp_path: Path) -> None:
    data = example_site()
    data["hosts"] = {"alpha": {"address": "192.0.2.1", "host_key": "AAAA; rm -rf /"}}
    data["defaults"]["host"] = "alpha"
    site = Site(tmp_path / "s", data)
    done = domus(site, "status")
    assert done.returncode == 78
    assert "hosts.alpha.host_key" in done.stderr and "Traceback" not in done.stderr


@needs_sshd
def test_a_pinned_key_is_the_only_key_accepted(tmp_path: Path, alpha: Dom0) -> None:
    pinned = hosts_site(tmp_path, [alpha], pin=True)
    done = over_ssh(pinned)
    assert done.returncode == 0 and done.stdout.strip() == "reached", done.stderr
    data = pinned.data
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    data["hosts"]["alpha"]["host_key"] = " ".join(other.with_suffix(".pub").read_text().split()[:2])
    wrong = Site(tmp_path / "wrong", data)
    done = over_ssh(wrong)
    assert done.returncode != 0 and "reached" not in done.stdout
    assert "verification failed" in done.stderr


@needs_sshd
def test_a_deploy_to_an_unknown_key_sends_nothing_and_says_how_to_trust(
    tmp_path: Path, alpha: Dom0
) -> None:
    site = hosts_site(tmp_path, [alpha], pin=False)
    done = domus(site, "deploy")
    assert done.returncode == 78, done.stdout + done.stderr
    assert "no ssh host key of alpha" in done.stderr
    assert "--trust alpha" in done.stderr and "host_key" in done.stderr
    assert "Traceback" not in done.stderr
    assert not alpha.output.exists()  # nothing reached the host
    assert "Accepted" not in (alpha.directory / "sshd.log").read_text()


@needs_sshd
def test_trust_shows_the_fingerprint_and_then_that_key_alone_is_accepted(
    tmp_path: Path, alpha: Dom0
) -> None:
    site = hosts_site(tmp_path, [alpha], pin=False)
    loaded = load_site(site.path)
    with pytest.raises(SiteError):
        write_known_hosts(loaded, loaded.hosts)
    done = domus(site, "deploy", "--trust", "alpha")
    assert done.returncode == 0, done.stderr
    assert fingerprint_of(alpha.directory / "host_key.pub") in done.stdout
    assert not alpha.output.exists()  # trusting deploys nothing
    reached = over_ssh(site)
    assert reached.returncode == 0 and reached.stdout.strip() == "reached", reached.stderr
    assert known_hosts(loaded).read_text().startswith("domus-alpha ssh-ed25519 ")
    # the host's key changes (a new machine at that address): ssh refuses it
    alpha.stop()
    for key in (alpha.directory / "host_key", alpha.directory / "host_key.pub"):
        key.unlink()
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(alpha.directory / "host_key")],
        check=True,
    )
    alpha.start()
    changed = over_ssh(site)
    assert changed.returncode != 0 and "reached" not in changed.stdout
