"""How this machine talks to a dom0 with ssh: only to the host key the site pins or the
operator trusted, with nothing forwarded, over a shared connection in a private directory.

    <output>/deploy/trusted_hosts   keys accepted with `./domus deploy --trust HOST`
    <output>/deploy/known_hosts     what ssh checks: the pinned keys, else the trusted ones
    <output>/deploy/ssh/            0700: the sockets of the shared connections

Every key is filed under the alias `domus-NAME` (ssh's HostKeyAlias), not the address: two
hosts behind one address keep their own keys, and a host that moves keeps its key.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from tasks.run.errors import DomusError, SiteError
from tasks.site import Host, Site

# a unix socket's path must fit in sun_path (104 bytes on NetBSD, 108 on Linux), with the
# 17 characters ssh adds while it makes the socket: a socket is named by a short digest of
# its host's name, not by ssh's 40-digit %C
SOCKET_PATH_MAX = 104 - 17
SOCKET_NAME_LENGTH = 8


def alias(host: Host) -> str:
    return f"domus-{host.name}"


def _deploy_dir(site: Site) -> Path:
    return site.output / "deploy"


def known_hosts(site: Site) -> Path:
    return _deploy_dir(site) / "known_hosts"


def trusted_hosts(site: Site) -> Path:
    return _deploy_dir(site) / "trusted_hosts"


def control_dir(site: Site) -> Path:
    return _deploy_dir(site) / "ssh"


def _trusted_lines(site: Site) -> list[str]:
    try:
        return trusted_hosts(site).read_text().splitlines()
    except FileNotFoundError:
        return []


def keys_of(site: Site, host: Host) -> list[str]:
    """The host keys ssh accepts from `host`: the pinned one, else those trusted."""
    if host.host_key is not None:
        return [host.host_key]
    prefix = alias(host) + " "
    return [line[len(prefix) :] for line in _trusted_lines(site) if line.startswith(prefix)]


def write_known_hosts(site: Site, hosts: Sequence[Host]) -> None:
    """The known_hosts ssh checks `hosts` against; a SiteError, before anything is sent,
    naming each host whose key is neither pinned nor trusted."""
    unknown = [host for host in hosts if not keys_of(site, host)]
    if unknown:
        names = ", ".join(host.name for host in unknown)
        first = unknown[0]
        raise SiteError(
            f"{site.path}: no ssh host key of {names}: domus sends nothing to a host it "
            "cannot tell from another",
            hint=f"pin it as hosts.{first.name}.host_key (the dom0's "
            f"/etc/ssh/ssh_host_ed25519_key.pub, or `ssh-keyscan -p {first.port} "
            f"{first.address}` checked against it), or accept it with "
            f"`./domus deploy --trust {first.name}`",
        )
    lines = [f"{alias(host)} {key}" for host in site.hosts for key in keys_of(site, host)]
    path = known_hosts(site)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".new")
    temporary.write_text("".join(line + "\n" for line in lines))
    temporary.replace(path)


def ssh_options(site: Site, host: Host) -> list[str]:
    """Options of every ssh connection to `host`, Ansible's and rsync's: its key checked
    against known_hosts alone, nothing forwarded whatever ~/.ssh/config says, never a
    password prompt."""
    options = [
        "-o", "BatchMode=yes",
        "-o", f"UserKnownHostsFile={known_hosts(site)}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", f"HostKeyAlias={alias(host)}",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "UpdateHostKeys=no",
        "-o", "ForwardAgent=no",
        "-o", "ForwardX11=no",
        "-o", "ClearAllForwardings=yes",
        "-o", "ConnectTimeout=10",
    ]  # fmt: skip
    if host.identity is not None:
        options += ["-o", "IdentitiesOnly=yes", "-i", str(host.identity)]
    return options


def _sharing(site: Site, host: Host) -> list[str]:
    """One shared connection per host, its socket in a directory only this user can enter;
    none where the output's path is too long for a socket's."""
    directory = control_dir(site)
    socket = directory / hashlib.sha256(host.name.encode()).hexdigest()[:SOCKET_NAME_LENGTH]
    if len(str(socket)) >= SOCKET_PATH_MAX:
        return ["-o", "ControlMaster=no", "-o", "ControlPath=none"]
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    return [
        "-o", "ControlMaster=auto",
        "-o", "ControlPersist=60",
        "-o", f"ControlPath={socket}",
    ]  # fmt: skip


def rsh(site: Site, host: Host) -> str:
    """rsync's ssh command."""
    return shlex.join(
        ["ssh", "-p", str(host.port), *ssh_options(site, host), *_sharing(site, host)]
    )


def fingerprint(key: str) -> str:
    """`SHA256:...` of a public key line, as ssh-keygen -l prints it."""
    done = subprocess.run(
        ["ssh-keygen", "-l", "-f", "-"], input=key + "\n", capture_output=True, text=True
    )
    if done.returncode != 0:
        raise DomusError(f"not an ssh public key: {key[:40]}...")
    return done.stdout.split()[1]


def scan(host: Host) -> list[str]:
    """The public host keys `host` offers now (type and base64), as ssh-keyscan reads them."""
    done = subprocess.run(
        ["ssh-keyscan", "-T", "10", "-p", str(host.port), host.address],
        capture_output=True,
        text=True,
    )
    keys = sorted(
        " ".join(fields[1:3])
        for fields in (line.split() for line in done.stdout.splitlines())
        if len(fields) >= 3 and not fields[0].startswith("#")
    )
    if not keys:
        error = done.stderr.strip().splitlines()
        raise DomusError(
            f"{host.name}: no ssh host key read from {host.address} port {host.port}"
            + (f": {error[-1]}" if error else ""),
            hint="is sshd running there and reachable from here?",
        )
    return keys


def trust(site: Site, hosts: Sequence[Host], out: TextIO) -> None:
    """Accept the keys each of `hosts` offers now, showing their fingerprints: the
    operator compares them with the dom0's own (`ssh-keygen -l -f
    /etc/ssh/ssh_host_ed25519_key.pub` there). A pinned host keeps its pin."""
    kept = _trusted_lines(site)
    for host in hosts:
        if host.host_key is not None:
            pinned = fingerprint(host.host_key)
            print(f"{host.name}: pinned in the site ({pinned}); unchanged", file=out)
            continue
        keys = scan(host)
        prefix = alias(host) + " "
        kept = [line for line in kept if not line.startswith(prefix)]
        kept += [prefix + key for key in keys]
        for key in keys:
            print(f"{host.name}: trusted {key.split()[0]} {fingerprint(key)}", file=out)
    path = trusted_hosts(site)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".new")
    temporary.write_text("".join(line + "\n" for line in kept))
    temporary.replace(path)
