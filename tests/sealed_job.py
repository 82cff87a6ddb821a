"""`./domus converge NAME` of an encrypted local image, stopped at a chosen point so a test
can SIGKILL it there; or `./domus check NAME`, stopped once it has decrypted the image.

    python -m tests.sealed_job SITE NAME MARK POINT
        POINT decrypted: the plaintext copy is whole; converged: the plaintext is
        converged, nothing sealed yet; sealed: the new sealed image is written beside the
        old one, not yet renamed over it; checking: check's plaintext copy is whole. At
        POINT, write MARK and wait to be killed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tasks.checks import images
from tasks.converge import sealed


def stopped_at(site_path: Path, name: str, mark: Path, point: str) -> subprocess.Popen:
    """The job started, once it has reached POINT (and waits there to be killed)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.sealed_job", str(site_path), name, str(mark), point],
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not mark.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return process


def main(site_path: str, name: str, mark: str, point: str) -> int:
    decrypt, encrypt = sealed.decrypt_file, sealed.encrypt_file

    def stop(here: str) -> None:
        if here == point:
            Path(mark).write_text(here)
            time.sleep(600)

    def decrypting(*args, **kwargs):
        decrypt(*args, **kwargs)
        stop("decrypted")

    def encrypting(*args, **kwargs):
        stop("converged")
        encrypt(*args, **kwargs)
        stop("sealed")

    def check_decrypting(*args, **kwargs):
        decrypt(*args, **kwargs)
        stop("checking")

    from tasks.cli import main as domus

    if point == "checking":
        images.decrypt_file = check_decrypting
        return domus(["check", name, f"config={site_path}"])
    sealed.decrypt_file, sealed.encrypt_file = decrypting, encrypting
    return domus(["converge", name, f"config={site_path}"])


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
