"""Progress of long steps: a line on a terminal, erased at the end; nothing elsewhere."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tasks.run import progress as progress_module
from tasks.run.progress import ERASE, Progress, watching
from tasks.tools import run
from tests.sites import REPO, Site


class Terminal:
    """A pty: `stream` is its terminal side, `output()` all that was written to it."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        self.stream = open(self.slave, "w", closefd=False)  # noqa: SIM115
        self.chunks: list[bytes] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: every terminal side is closed
                return
            if not chunk:
                return
            self.chunks.append(chunk)

    def output(self) -> str:
        self.stream.close()
        os.close(self.slave)
        self.reader.join(timeout=10)
        os.close(self.master)
        return b"".join(self.chunks).decode()


def test_a_terminal_gets_one_line_redrawn_and_erased_at_the_end():
    terminal = Terminal()
    with Progress("encrypting local.img", 4 << 20, stream=terminal.stream) as progress:
        progress.update(1 << 20)
        progress.update(2 << 20, force=True)
    shown = terminal.output()
    assert "encrypting local.img: 1.0 of 4.0 MiB (25%)" in shown
    assert "encrypting local.img: 2.0 of 4.0 MiB (50%)" in shown
    assert shown.endswith(ERASE) and "\n" not in shown


def test_no_terminal_gets_nothing():
    stream = io.StringIO()
    with Progress("staging", 10, unit="files", stream=stream) as progress:
        for done in range(10):
            progress.update(done, force=True)
    assert stream.getvalue() == ""


def test_a_quiet_tool_is_watched_by_what_it_reads(monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal.stream)
    monkeypatch.setattr(progress_module, "INTERVAL", 0.05)
    read_then_wait = "import time; open('/dev/zero', 'rb').read(3 << 20); time.sleep(1)"
    run([sys.executable, "-c", read_then_wait], "root.img", reads=4 << 20)
    shown = terminal.output()
    assert "root.img: " in shown and "of 4.0 MiB" in shown
    assert shown.endswith(ERASE)


def test_watching_shows_seconds_when_it_cannot_measure(monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal.stream)
    monkeypatch.setattr(progress_module, "INTERVAL", 0.05)
    with watching("pkg.img: makefs", lambda: None):
        threading.Event().wait(0.3)
    assert "pkg.img: makefs: 0.0 MiB, 0 s" in terminal.output()


def build(site: Site, stderr) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(REPO / "domus"), "build", f"config={site.path}"],
        stdout=subprocess.PIPE,
        stderr=stderr,
        stdin=subprocess.DEVNULL,
        cwd=REPO,
        check=False,
    )


@pytest.fixture
def site(tmp_path) -> Site:
    site = Site(tmp_path / "site")
    site.data["domains"]["www2"]["local"] = {"encrypt": "dom0"}
    site.save()
    return site


def test_a_build_on_a_terminal_shows_its_long_steps(site):
    terminal = Terminal()
    done = build(site, terminal.stream)
    shown = terminal.output()
    assert done.returncode == 0, shown
    assert "staging root: 1 of 37 files (2%), 0 s" in shown
    assert "encrypting www2/local.img: 1.0 of 16.0 MiB (6%), 0 s" in shown
    # every line drawn is erased (the terminal turns each newline into \r\n)
    assert shown.count("\r") == shown.count(ERASE) + shown.count("\r\n")


def test_a_build_with_stderr_in_a_pipe_or_file_shows_none_of_it(site, tmp_path):
    log = tmp_path / "build.log"
    with open(log, "w") as stderr:
        done = build(site, stderr)
    assert done.returncode == 0
    text = Path(log).read_text()
    assert "\r" not in text and "\033[" not in text and "staging" not in text
