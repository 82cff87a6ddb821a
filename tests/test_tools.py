"""Running external tools: PATH first, then the sbin directories; clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tasks import tools
from tasks.run.errors import DomusError


def stand_in(directory: Path, name: str, script: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)
    return path


def test_a_stand_in_on_path_wins_and_sbin_is_searched_after_it(tmp_path, monkeypatch):
    sbin = tmp_path / "sbin"
    in_sbin = stand_in(sbin, "domus-tool", "echo sbin")
    monkeypatch.setattr(tools, "SBIN_DIRS", (str(sbin),))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert tools.find("domus-tool") == str(in_sbin)
    on_path = stand_in(tmp_path / "bin", "domus-tool", "echo path")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    assert tools.find("domus-tool") == str(on_path)
    assert tools.output(["domus-tool"], "testing") == "path\n"


def test_a_missing_tool_names_how_to_install_it(monkeypatch):
    monkeypatch.setattr(tools, "SBIN_DIRS", ())
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(DomusError) as caught:
        tools.run(["mke2fs", "-q"], "local.img")
    assert caught.value.message == "local.img: `mke2fs` is not installed"
    assert "apt-get install e2fsprogs" in (caught.value.hint or "")


def test_a_failure_quotes_the_command_and_its_stderr(tmp_path, monkeypatch):
    stand_in(tmp_path, "domus-tool", "echo 'no such unit' >&2; exit 3")
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    with pytest.raises(DomusError) as caught:
        tools.run(["domus-tool", "-u", "vnd0"], "detaching")
    assert caught.value.message == "detaching: `domus-tool -u vnd0` failed (exit 3): no such unit"
    assert tools.run(["domus-tool"], "detaching", check=False).returncode == 3


def test_stdin_is_the_input_given_or_empty(tmp_path, monkeypatch):
    stand_in(tmp_path, "domus-cat", "cat")
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    assert tools.run(["domus-cat"], "reading", input="ls /\n").stdout == "ls /\n"
    assert tools.run(["domus-cat"], "reading").stdout == ""


def test_tool_variables_name_another_program_as_netbsd_s_mkimage_takes_them(tmp_path, monkeypatch):
    """TOOL_MAKEFS=nbmakefs (build.sh's name for it) is the makefs every image is made with;
    a variable naming nothing is an error naming the variable, not a fallback."""
    nbmakefs = stand_in(tmp_path / "tools" / "bin", "nbmakefs", 'echo "nbmakefs $*"')
    monkeypatch.setenv("TOOL_MAKEFS", str(nbmakefs))
    monkeypatch.setenv("TOOL_FSCK_FFS", "nbfsck_ffs")
    monkeypatch.setenv("PATH", f"{tmp_path / 'tools' / 'bin'}:/usr/bin:/bin")
    assert tools.run(["makefs", "-t", "ffs"], "making root.img").stdout == "nbmakefs -t ffs\n"
    assert tools.find("fsck_ffs") is None
    with pytest.raises(DomusError) as refused:
        tools.require("fsck_ffs", "checking root.img")
    assert refused.value.message == (
        "checking root.img: TOOL_FSCK_FFS=nbfsck_ffs names no program to run"
    )
    monkeypatch.setenv("TOOL_FSCK_FFS", "nbmakefs")
    assert tools.find("fsck_ffs") == str(nbmakefs)
