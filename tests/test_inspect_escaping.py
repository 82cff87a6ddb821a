"""`./domus ls`, `show` and `diff` on names, link targets and contents a domU chose: an
escape sequence reaches the operator's terminal only escaped, as `ls -b` writes it."""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
import tty

import pytest

from tasks.inspect.escaping import escaped, escaped_content, for_terminal
from tests.sites import REPO, Site
from tests.test_cli import domus

TITLE = "\x1b]0;owned\x07"  # sets the terminal's title
CLEAR = "\x1b[2J"  # clears the screen
EVIL = f"evil{TITLE}"
CONTENT = f"line one{CLEAR}\n\ttabbed \\ kept\n".encode()


def test_names_are_escaped_as_ls_b_does():
    assert escaped(EVIL) == "evil\\033]0;owned\\007"
    assert escaped("new\nline\\tab\t") == "new\\012line\\\\tab\\011"
    assert escaped("caf\udce9 caf\u00e9") == "caf\\351 caf\u00e9"  # Latin-1 byte, UTF-8 é
    assert escaped("\x9b31m\x7f") == "\\302\\23331m\\177"  # C1 CSI, DEL
    assert escaped_content("a\x1b\tb\\\n") == "a\\033\tb\\\n"
    assert for_terminal(b"\xff" + CONTENT) == b"\\377line one\\033[2J\n\ttabbed \\ kept\n"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Site:
    top = tmp_path_factory.mktemp("escaping")
    tree = top / "root"
    shutil.copytree(REPO / "config" / "example" / "root", tree, symlinks=True)
    site = Site(top / "site")
    site.data["root"]["source"]["tree"] = str(tree)
    site.save()
    site.build()
    (tree / "etc" / EVIL).write_bytes(CONTENT)
    (tree / "etc" / "lure").symlink_to(f"/tmp/{CLEAR}x")
    with open(tree / "etc" / "motd", "a") as motd:
        motd.write(f"{CLEAR}welcome\n")
    site.build()  # a second generation, with the domU-chosen names added
    return site


def run(site: Site, *args: str):
    return domus(*args, f"config={site.path}", cwd=site.directory, env={"TZ": "UTC"})


def on_terminal(site: Site, *args: str) -> bytes:
    """What `./domus ARGS` writes when its standard output is a terminal."""
    parent, child = pty.openpty()
    tty.setraw(child)  # the bytes as written, no \r added
    command = [str(REPO / "domus"), *args, f"config={site.path}"]
    process = subprocess.Popen(
        command, stdout=child, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd=site.directory
    )
    os.close(child)
    chunks = []
    while True:
        try:
            chunk = os.read(parent, 1 << 16)
        except OSError:  # EIO: the command closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(parent)
    _, errors = process.communicate()
    assert process.returncode == 0, errors
    return b"".join(chunks)


def test_ls_escapes_names_and_link_targets(site):
    done = run(site, "ls", "root:/etc")
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout + done.stderr
    assert "  evil\\033]0;owned\\007\n" in done.stdout
    assert "  lure -> /tmp/\\033[2Jx\n" in done.stdout


def test_show_writes_the_bytes_raw_into_a_pipe_and_escaped_on_a_terminal(site):
    piped = subprocess.run(
        [str(REPO / "domus"), "show", f"root:/etc/{EVIL}", f"config={site.path}"],
        capture_output=True,
        cwd=site.directory,
    )
    assert (piped.returncode, piped.stdout) == (0, CONTENT)
    shown = on_terminal(site, "show", f"root:/etc/{EVIL}")
    assert shown == b"line one\\033[2J\n\ttabbed \\ kept\n"
    link = run(site, "show", "root:/etc/lure")
    assert link.returncode == 1
    assert "symbolic link to /tmp/\\033[2Jx" in link.stdout + link.stderr
    assert "\x1b" not in link.stdout + link.stderr


def test_diff_escapes_names_and_on_a_terminal_the_lines(site):
    done = run(site, "diff", "root")
    assert done.returncode == 0, done.stderr
    assert "added    /etc/evil\\033]0;owned\\007 (file" in done.stdout
    assert "added    /etc/lure (link -> /tmp/\\033[2Jx)" in done.stdout
    assert TITLE not in done.stdout
    assert f"+{CLEAR}welcome\n" in done.stdout  # a pipe gets the lines as they are
    shown = on_terminal(site, "diff", "root")
    assert b"\x1b" not in shown
    assert b"added    /etc/evil\\033]0;owned\\007 (file" in shown
    assert b"\n+\\033[2Jwelcome\n" in shown
