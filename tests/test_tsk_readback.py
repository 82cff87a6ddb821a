"""An ext2fs image is read back by The Sleuth Kit's library in one child process an image:
no process a file, each inode once, no directory twice, and a child that crashes, runs out
of time or memory, or says too much, is one problem line naming the image."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tasks.checks.readback as readback
from tasks.checks import MOST
from tasks.checks.images import check_image
from tasks.checks.readback import tsk_read_problems
from tasks.images.ext2fs import FEATURES
from tasks.run.errors import DomusError


def ext2_image(tmp_path: Path, files: int, name: str = "local.img") -> Path:
    """An image as domus makes one (tasks/images/ext2fs.py) holding `files` small files in
    directories of 100, a hard link and a symlink that points back up."""
    top = tmp_path / f"tree-{name}"
    for number in range(files):
        directory = top / "var" / f"d{number // 100}"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"f{number}").write_bytes(b"x" * (number % 3000))
    (top / "etc").mkdir(parents=True)
    (top / "etc" / "rc.conf").write_text("sshd=YES\n")
    (top / "etc" / "rc.conf.link").hardlink_to(top / "etc" / "rc.conf")
    (top / "etc" / "up").symlink_to("..")
    image = tmp_path / name
    subprocess.run(["truncate", "-s", "64m", str(image)], check=True)
    subprocess.run(
        ["mke2fs", "-q", "-F", "-t", "ext2", "-r", "1", "-O", FEATURES, "-I", "128",
         "-b", "1024", "-d", str(top), str(image)],
        check=True, capture_output=True,
    )  # fmt: skip
    return image


def debugfs(image: Path, request: str) -> str:
    return subprocess.run(
        ["debugfs", "-w", "-R", request, str(image)], check=True, capture_output=True, text=True
    ).stdout


def first_block(image: Path, path: str) -> int:
    """The first data block of `path` in `image` (debugfs `blocks`)."""
    return int(
        subprocess.run(
            ["debugfs", "-R", f"blocks {path}", str(image)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()[0]
    )


def inode_of(image: Path, path: str) -> int:
    done = subprocess.run(
        ["debugfs", "-R", f"stat {path}", str(image)], check=True, capture_output=True, text=True
    )
    return int(done.stdout.split()[1])


@pytest.fixture
def started(monkeypatch) -> list[list[str]]:
    """The argv of every process started, through subprocess.Popen."""
    seen: list[list[str]] = []
    real = subprocess.Popen

    class Recorded(real):  # type: ignore[valid-type, misc]
        def __init__(self, args, *rest, **kwargs):
            seen.append([str(arg) for arg in args])
            super().__init__(args, *rest, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", Recorded)
    return seen


def test_an_image_of_many_files_costs_the_processes_of_one_of_few(tmp_path, started):
    few = ext2_image(tmp_path, 3, "few.img")
    many = ext2_image(tmp_path, 1500, "many.img")
    started.clear()
    assert all(finding.ok for finding in check_image(few, "ext2fs")), started
    for_few = len(started)
    started.clear()
    findings = check_image(many, "ext2fs")
    assert [f.problem for f in findings if not f.ok] == []
    assert len(started) == for_few <= 3, started  # e2fsck, and one reader for the image
    readers = [argv for argv in started if "tasks.checks.tsk_readback" in argv]
    assert readers == [readback.tsk_command(many, "ext2fs")]
    assert not [argv for argv in started if Path(argv[0]).name in ("icat", "fls", "istat")]


def test_a_file_whose_data_is_cut_off_is_named_once_whatever_its_names(tmp_path):
    image = ext2_image(tmp_path, 3)
    assert tsk_read_problems(image, "ext2fs") == []
    inode = inode_of(image, "/etc/rc.conf")
    with open(image, "r+b") as f:
        f.truncate(first_block(image, "/etc/rc.conf") * 1024)
    problems = [p for p in tsk_read_problems(image, "ext2fs") if f"(inode {inode})" in p]
    assert len(problems) == 1, problems  # rc.conf and its hard link rc.conf.link: one inode
    assert problems[0].startswith((f"/etc/rc.conf (inode {inode}): ", "/etc/rc.conf.link"))
    assert "Read error" in problems[0]


def test_an_image_with_many_unreadable_files_reports_the_most(tmp_path):
    image = ext2_image(tmp_path, 100)
    # 30 files whose first block lies past the end of the image
    script = tmp_path / "script"
    script.write_text("".join(f"sif /var/d0/f{n} block[0] 99999999\n" for n in range(1, 31)))
    subprocess.run(["debugfs", "-w", "-f", script, image], check=True, capture_output=True)
    problems = tsk_read_problems(image, "ext2fs")
    assert len(problems) == MOST
    assert all(" (inode " in problem for problem in problems), problems


TWICE = "a directory reached twice"


def test_a_directory_reached_twice_is_named_and_not_entered_again(tmp_path):
    image = ext2_image(tmp_path, 3)
    debugfs(image, "ln <2> var/d0/root")  # the root, named again below itself
    debugfs(image, "ln /etc var/etc")
    etc = inode_of(image, "/etc")
    problems = sorted(tsk_read_problems(image, "ext2fs"))
    # whichever of its names the walk meets second
    assert problems in (
        [f"/etc (inode {etc}): {TWICE}", f"/var/d0/root (inode 2): {TWICE}"],
        [f"/var/d0/root (inode 2): {TWICE}", f"/var/etc (inode {etc}): {TWICE}"],
    )


def test_an_image_that_is_no_file_system_is_one_line(tmp_path):
    image = tmp_path / "zeros.img"
    image.write_bytes(bytes(1 << 20))
    (problem,) = tsk_read_problems(image, "ext2fs")
    assert problem.startswith("The Sleuth Kit cannot open the file system: ")


def test_the_real_reader_past_its_time_limit_is_one_line(tmp_path, monkeypatch):
    image = ext2_image(tmp_path, 3)
    monkeypatch.setattr(readback, "TOOL_SECONDS", 0.001)
    assert tsk_read_problems(image, "ext2fs") == [
        "reading local.img stopped: did not finish in 0.001 s"
    ]


def child(monkeypatch, code: str, seconds: float = 30) -> None:
    """The reader replaced by a Python program `code`, within `seconds`."""
    monkeypatch.setattr(readback, "tsk_command", lambda *_: [sys.executable, "-c", code])
    monkeypatch.setattr(readback, "TOOL_SECONDS", seconds)


def test_a_reader_that_hangs_is_stopped_and_what_it_found_is_kept(tmp_path, monkeypatch):
    found = "/etc/x (inode 12): read 0 bytes, its inode says 1"
    child(monkeypatch, f"import time; print('{json.dumps(found)}', flush=True); time.sleep(60)", 1)
    started = time.monotonic()
    problems = tsk_read_problems(tmp_path / "local.img", "ext2fs")
    assert time.monotonic() - started < 10
    assert problems == [
        "reading local.img stopped: did not finish in 1 s",
        found,
    ]


@pytest.mark.parametrize(
    ("code", "why"),
    [
        ("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)", "killed by SIGSEGV"),
        # the guest limit: 2 GiB of address space
        ("x = bytearray(8 << 30)", "out of memory (a reader of a guest's disk may take 2g)"),
        ("import sys; sys.exit('no such file system')", "exit 1: no such file system"),
        ("print('x' * (2 << 20))", "wrote more than 1m"),
        ("print('[1, 2]')", "a line of its report is not a JSON string"),
        ("print('Traceback (most recent')", "a line of its report is not a JSON string"),
    ],
)  # fmt: skip
def test_a_reader_that_fails_is_one_line_naming_the_image(tmp_path, monkeypatch, code, why):
    child(monkeypatch, code)
    assert tsk_read_problems(tmp_path / "local.img", "ext2fs") == [
        f"reading local.img stopped: {why}"
    ]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int]]:
    """A small image, and the offsets of what a guest could change that leads a reader:
    the mode, size and block pointers of the root's inode and those after lost+found, and
    the root directory's entries."""
    top = tmp_path_factory.mktemp("mutants")
    image = ext2_image(top, 40)
    table = int(debugfs(image, "stats").split("inode table at ")[1].split()[0]) * 1024
    root = first_block(image, "/") * 1024
    fields = [0, 4, 108, *range(40, 100, 4)]  # mode, size, size_high, block[0..14]
    inodes = [table + (number - 1) * 128 + at for number in [2, *range(11, 31)] for at in fields]
    return image, inodes + [root + at for at in range(0, 1024, 4)]


@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_a_mutated_image_is_read_or_refused_in_lines(data, base, tmp_path):
    image, places = base
    mutant = bytearray(image.read_bytes())
    for offset in data.draw(st.lists(st.sampled_from(places), min_size=1, max_size=4)):
        value = data.draw(st.sampled_from([0, 1, 2, 11, 0xFFFF, 2**31, 2**32 - 1]))
        mutant[offset : offset + 4] = value.to_bytes(4, "little")
    (tmp_path / "mutant.img").write_bytes(mutant)
    problems = tsk_read_problems(tmp_path / "mutant.img", "ext2fs")
    assert len(problems) <= MOST
    assert not [p for p in problems if "Traceback" in p or "stopped" in p], problems


def test_without_pytsk3_the_check_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setattr(readback.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DomusError, match="the Python module pytsk3 is not installed") as caught:
        tsk_read_problems(tmp_path / "local.img", "ext2fs")
    assert "pyproject.toml" in (caught.value.hint or "")
