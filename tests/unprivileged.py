"""Run domus as the unprivileged user nobody (uid 65534) from any checkout.

A checkout under root's home, or in a `mktemp -d` directory, has a 0700 directory on the way
down: uid 65534 can reach neither the repository nor its .venv there. Then the repository's code
(tasks/, dodo.py, templates/, config/) and the venv's site-packages are copied into a
world-readable directory, so that the run is still really unprivileged; where no interpreter
nobody can start can import that copy, the test skips saying why and how to run it.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.conftest import REPO
from tests.sites import example_site

NOBODY = 65534
# the modules a build imports: the project's dependencies, and the project itself
IMPORTS = "import doit, jinja2, yaml, filelock, cryptography, numpy, tasks.kinds"
CODE = ("tasks", "templates", "config", "dodo.py")


def as_nobody(command: list[str]) -> list[str]:
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--", *command]


@dataclass(frozen=True)
class Unprivileged:
    """How nobody runs this checkout's code: `python` with `env`, the code in `repo`."""

    python: str
    repo: Path
    pythonpath: str

    def example_site(self) -> dict:
        """The example site (tests/sites.py), its files those in `repo`, where nobody reads."""
        text = yaml.safe_dump(example_site())
        return yaml.safe_load(text.replace(f"{REPO}/", f"{self.repo}/"))

    def run(self, args: list[str], *, home: Path) -> subprocess.CompletedProcess[str]:
        """`python ARGS` as nobody, in `repo`, with HOME at `home`."""
        return subprocess.run(
            as_nobody([self.python, *args]),
            capture_output=True,
            text=True,
            cwd=self.repo,
            env={**os.environ, "HOME": str(home), "PYTHONPATH": self.pythonpath},
        )

    def doit(self, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
        dodo = self.repo / "dodo.py"
        return self.run(["-m", "doit", "-f", str(dodo), "-d", str(self.repo), *args], home=home)


def _imports(python: str, repo: Path, pythonpath: str) -> str | None:
    """None if nobody can start `python` and import a build's modules, else why not."""
    try:
        done = Unprivileged(python, repo, pythonpath).run(["-c", IMPORTS], home=repo)
    except OSError as error:
        return str(error)
    if done.returncode == 0:
        return None
    return (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]


def _interpreters() -> list[str]:
    """This interpreter, then the one the venv was made from, as nobody may reach either."""
    base = getattr(sys, "_base_executable", sys.executable)
    found = [sys.executable, base, os.path.realpath(base), os.path.realpath(sys.executable)]
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    found += [p for p in (shutil.which(version, path="/usr/local/bin:/usr/bin"),) if p]
    return list(dict.fromkeys(found))


def _readable_copy(into: Path) -> None:
    for name in CODE:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(
                source, into / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(source, into / name)
    for packages in site.getsitepackages():
        shutil.copytree(packages, into / "site-packages", symlinks=True, dirs_exist_ok=True)
    for path in [into, *into.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else path.stat().st_mode | 0o444)


@contextmanager
def unprivileged() -> Iterator[Unprivileged | str]:
    """Yield how nobody runs this checkout, or why it cannot (a skip reason)."""
    if _imports(sys.executable, REPO, str(REPO)) is None:
        yield Unprivileged(sys.executable, REPO, str(REPO))
        return
    copy = Path(tempfile.mkdtemp(prefix="domus-nobody-"))
    try:
        _readable_copy(copy)
        pythonpath = f"{copy}:{copy / 'site-packages'}"
        why = {python: _imports(python, copy, pythonpath) for python in _interpreters()}
        usable = [python for python, error in why.items() if error is None]
        if usable:
            yield Unprivileged(usable[0], copy, pythonpath)
        else:
            tried = "; ".join(f"{python}: {error}" for python, error in why.items())
            yield (
                f"uid {NOBODY} cannot read {REPO} nor run a copy of it ({tried}); "
                f"run these tests from a checkout, with its .venv, that uid {NOBODY} can read "
                "(e.g. a clone under /srv with `./domus test`)"
            )
    finally:
        shutil.rmtree(copy)
