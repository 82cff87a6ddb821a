"""Stand-in dom0s for `./domus deploy`: a real sshd per host on a loopback port, each with
its own host key, client key and directory, started and stopped by the test.

They all log in as the user running the tests (root in CI), each into a directory of its
own, which is what a dom0 is to domus: an ssh login and an output directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = shutil.which("sshd") or shutil.which("sshd", path="/usr/sbin:/sbin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(port: int, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                if sock.recv(4).startswith(b"SSH-"):
                    return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"sshd on port {port} did not answer")


@dataclass
class Dom0:
    name: str
    directory: Path  # everything of this stand-in: sshd's files and the dom0's output
    port: int
    process: subprocess.Popen | None = None

    @property
    def output(self) -> Path:
        return self.directory / "dom0"

    @property
    def bin(self) -> Path:
        """First on the PATH of every login: where a test puts a stand-in `xl`."""
        return self.directory / "bin"

    @property
    def identity(self) -> Path:
        return self.directory / "id_ed25519"

    @property
    def host_key(self) -> str:
        """Its public host key as the site pins it: type and base64, no comment."""
        return " ".join((self.directory / "host_key.pub").read_text().split()[:2])

    def site_entry(self) -> dict[str, object]:
        return {
            "address": "127.0.0.1",
            "user": os.environ.get("USER") or "root",
            "port": self.port,
            "identity": str(self.identity),
            "host_key": self.host_key,
            "dom0": "linux",
            "output": str(self.output),
            "python": shutil.which("python3") or "python3",
        }

    def setup(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        for key in (self.identity, self.directory / "host_key"):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True
            )
        authorized = self.directory / "authorized_keys"
        shutil.copyfile(self.identity.with_suffix(".pub"), authorized)
        os.chmod(authorized, 0o600)
        (self.directory / "sshd_config").write_text(
            f"Port {self.port}\n"
            "ListenAddress 127.0.0.1\n"
            f"HostKey {self.directory / 'host_key'}\n"
            f"AuthorizedKeysFile {authorized}\n"
            f"PidFile {self.directory / 'sshd.pid'}\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "PermitRootLogin prohibit-password\n"
            "UsePAM no\n"
            "StrictModes no\n"
            "MaxStartups 100\n"
            "MaxSessions 100\n"
            "Subsystem sftp internal-sftp\n"
            f"SetEnv PATH={self.bin}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin\n"
        )
        self.bin.mkdir(exist_ok=True)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation

    def start(self) -> None:
        assert SSHD is not None
        self.process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(self.directory / "sshd_config")],
            stdout=subprocess.DEVNULL,
            stderr=open(self.directory / "sshd.log", "ab"),  # noqa: SIM115
        )
        wait_listening(self.port)

    def stop(self) -> None:
        """Down as a powered-off dom0 is: the listener and every connection it accepted
        (ssh clients keep a master connection open for later logins)."""
        if self.process is not None and self.process.poll() is None:
            sessions = subprocess.run(
                ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True
            ).stdout.split()
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=10)
            for pid in map(int, sessions):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        self.process = None


def start_dom0s(top: Path, names: list[str]) -> list[Dom0]:
    dom0s = [Dom0(name, top / name, free_port()) for name in names]
    for dom0 in dom0s:
        dom0.setup()
        dom0.start()
    return dom0s
