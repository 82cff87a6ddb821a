"""xl itself judges the xl configs domus writes: `xl -N create FILE` parses a config and
prints the domain it would create as JSON, without creating it.

Without a hypervisor xl stops before it parses (it cannot open a libxl context), so the
few libxl calls it makes first are stubbed out with tests/xl_stub.c, preloaded.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

STUB_SOURCE = Path(__file__).with_name("xl_stub.c")
INSTALL_HINT = (
    "xl is not installed: `apt-get install -y xen-utils-4.17 gcc` "
    "(./domus test installs them as root on Debian)"
)


def xl_binary() -> Path | None:
    """The real xl: /usr/sbin/xl is Debian's wrapper, which refuses to run without a
    hypervisor, so take the versioned binary it would exec."""
    found = sorted(glob.glob("/usr/lib/xen-*/bin/xl"))
    return Path(found[-1]) if found else None


def missing() -> str | None:
    """Why xl cannot judge here, or None when it can."""
    if xl_binary() is None:
        return INSTALL_HINT
    if shutil.which("cc") is None:
        return "no C compiler for the xl stub: `apt-get install -y gcc`"
    return None


def build_stub(directory: Path) -> Path:
    stub = directory / "xl_stub.so"
    subprocess.run(
        ["cc", "-shared", "-fPIC", "-Wall", "-Werror", "-o", str(stub), str(STUB_SOURCE)],
        check=True,
    )
    return stub


class XlRejected(AssertionError):
    pass


@dataclass
class Xl:
    binary: Path
    stub: Path

    def run(self, config: Path) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "LD_PRELOAD": str(self.stub)}
        return subprocess.run(
            [str(self.binary), "-N", "create", str(config)],
            capture_output=True,
            text=True,
            env=env,
        )

    def parse(self, config: Path) -> dict:
        """The domain xl would create from `config`; XlRejected with xl's words if it refuses."""
        done = self.run(config)
        if done.returncode != 0:
            raise XlRejected(f"xl rejects {config}: {done.stderr.strip()}")
        return json.loads(done.stdout)
