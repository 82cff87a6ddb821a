"""The operator's view: bad config stops everything, one run at a time, ./domus itself."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from filelock import FileLock

from tasks.cli import COMMANDS
from tests.conftest import REPO
from tests.sites import Run, Site


def domus(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Run:
    """`./domus ARGS` run from `cwd`, as an operator would."""
    done = subprocess.run(
        [str(REPO / "domus"), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def test_bad_config_exits_78_names_file_line_key_and_writes_nothing(tmp_path):
    site = Site(tmp_path / "site")
    site.data["domains"]["www1"]["memory"] = "lots"
    site.data["domains"]["Bad_Name"] = {}
    site.save()
    run = site.doit()
    assert run.returncode == 78
    assert f"{site.path}:" in run.stderr
    assert "domains.www1.memory: expected a size such as 256m or 1g, got 'lots'" in run.stderr
    assert "domains.Bad_Name" in run.stderr
    assert "nothing was built or changed" in run.stderr
    assert not site.output.exists()


def test_bad_config_after_a_build_changes_nothing(tmp_path):
    site = Site(tmp_path / "site")
    site.build()
    before = {p: p.stat().st_mtime_ns for p in site.output.rglob("*") if p.is_file()}
    site.data["root"]["size"] = "12q"
    site.save()
    run = site.doit()
    assert run.returncode == 78
    assert "root.size" in run.stderr
    after = {p: p.stat().st_mtime_ns for p in site.output.rglob("*") if p.is_file()}
    assert after == before


def test_a_second_run_exits_at_once_while_the_lock_is_held(tmp_path):
    site = Site(tmp_path / "site")
    lock = FileLock(str(site.output / "locks" / "run.lock"))
    (site.output / "locks").mkdir(parents=True)
    with lock:
        start = time.monotonic()
        run = site.doit()
        elapsed = time.monotonic() - start
    assert run.returncode == 75
    assert "another run holds the lock" in run.stderr
    assert elapsed < 10
    assert not (site.output / "images").exists()


def test_two_concurrent_runs_one_builds_one_refuses(tmp_path):
    site = Site(tmp_path / "site")
    command = [
        sys.executable,
        "-m",
        "doit",
        "-f",
        str(REPO / "dodo.py"),
        "-d",
        str(REPO),
        f"config={site.path}",
    ]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    codes = sorted([first.wait(), second.wait()])
    assert codes == [0, 75]
    assert site.image("root.img").exists()


def test_build_list_works_where_nothing_was_built_yet(tmp_path):
    site = Site(tmp_path / "site")
    assert not site.output.exists()
    for command in (["list"], ["dumpdb"], ["help", "run"]):
        done = domus("build", *command, f"config={site.path}", cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Traceback" not in done.stderr
    # doit's info of a task that would run says so, and worked: `./domus status` judges
    info = domus("build", "info", "root", f"config={site.path}", cwd=tmp_path)
    assert (info.returncode, info.stderr) == (0, "")
    assert "status     : run" in info.stdout
    listing = domus("build", "list", f"config={site.path}", cwd=tmp_path).stdout.splitlines()
    assert "root      the shared read-only root.img and the kernel beside it" in listing
    assert "local     each domU's local.img: its /etc, /var, /tmp (built once, then converged)" in (
        listing
    )
    assert not (site.output / "locks").exists()


def test_list_does_not_need_the_lock(tmp_path):
    site = Site(tmp_path / "site")
    (site.output / "locks").mkdir(parents=True)
    with FileLock(str(site.output / "locks" / "run.lock")):
        run = site.doit("list")
    assert run.returncode == 0
    assert "root" in run.stdout


def test_domus_help_and_unknown_command():
    done = subprocess.run([str(REPO / "domus"), "help"], capture_output=True, text=True)
    assert done.returncode == 0
    assert "./domus build" in done.stdout
    done = subprocess.run([str(REPO / "domus"), "frobnicate"], capture_output=True, text=True)
    assert done.returncode == 2
    assert "unknown command 'frobnicate'" in done.stderr


def test_parallel_build_makes_the_same_images(tmp_path):
    serial, parallel = Site(tmp_path / "serial"), Site(tmp_path / "parallel")
    serial.build()
    assert parallel.build("-n", "2").ran == serial.build("--always-execute").ran
    for name in ["www1", "www2", "db1"]:
        for image in ["local.img", "pkg.img", "swap.img"]:
            assert (
                parallel.image(name, image).stat().st_size
                == serial.image(name, image).stat().st_size
            )
    assert parallel.build().ran == set()


def test_domus_reprovision_through_the_script(tmp_path):
    site = Site(tmp_path / "site")
    site.build()
    old = site.image("www1", "local.img").read_bytes()
    # A relative config= is relative to where the operator stands, not to the repository.
    done = subprocess.run(
        [str(REPO / "domus"), "reprovision", "www1", "config=site/site.yaml"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert Run(done.returncode, done.stdout, done.stderr).ran == {"local:www1"}
    assert [p.read_bytes() for p in site.image("www1").glob("local-*.img")] == [old]
    done = subprocess.run(
        [str(REPO / "domus"), "reprovision", "nosuch", f"config={site.path}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert "no domain named nosuch" in done.stderr


COMMANDS_ON_A_SITE = [
    ["build"],
    ["build", "list"],
    ["reprovision", "www1"],
    ["converge", "www1"],
    ["converge", "--dry-run", "www1"],
    ["nightly"],
    ["generations"],
    ["activate", "root", "0"],
    ["rollback", "root"],
    ["pin", "root"],
    ["unpin", "root"],
    ["gc"],
]


@pytest.mark.parametrize("command", COMMANDS_ON_A_SITE, ids=" ".join)
def test_every_command_exits_78_on_an_invalid_site(tmp_path, command):
    site = Site(tmp_path / "site")
    site.data["domains"]["www1"]["memory"] = "lots"
    site.save()
    done = domus(*command, "--config", "site/site.yaml", cwd=tmp_path)
    assert done.returncode == 78, done.stdout + done.stderr
    assert done.stderr == (
        f"domus: {site.path}:{memory_line(site)}: domains.www1.memory: "
        "expected a size such as 256m or 1g, got 'lots'\n"
        "domus: nothing was built or changed.\n"
    )
    assert not site.output.exists()


def memory_line(site: Site) -> int:
    lines = site.path.read_text().splitlines()
    www1 = lines.index("  www1:")
    return next(i for i, line in enumerate(lines) if i > www1 and "memory: lots" in line) + 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["frobnicate"], "domus: unknown command 'frobnicate'"),
        (["converge"], "domus: the following arguments are required: NAME"),
        (["activate", "root"], "domus: the following arguments are required: GENERATION"),
        (["gc", "extra"], "domus: unrecognized arguments: extra"),
        (["build", "nosuchtask"], "domus: no task, target or doit command named 'nosuchtask'"),
        (["build", "--nosuchoption"], "domus: option --nosuchoption not recognized"),
        (["build", "--config"], "domus: --config needs a PATH"),
    ],
)
def test_usage_errors_exit_2_with_one_message(tmp_path, args, message):
    done = domus(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith(message + "\n"), done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("command", [["build"], ["converge", "www1"], ["gc"], ["nightly"]])
def test_every_command_that_changes_the_site_exits_75_while_the_lock_is_held(tmp_path, command):
    site = Site(tmp_path / "site")
    (site.output / "locks").mkdir(parents=True)
    with FileLock(str(site.output / "locks" / "run.lock")):
        done = domus(*command, f"config={site.path}", cwd=tmp_path)
    assert done.returncode == 75, done.stdout + done.stderr
    assert done.stderr.startswith("domus: another run holds the lock ")


def test_cgd_paths_are_relative_to_the_caller(tmp_path):
    done = domus("cgd", "genparams", "new.params", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "new.params").read_text().startswith("algorithm aes-xts;")
    assert not (REPO / "new.params").exists()
    again = domus("cgd", "genparams", "new.params", cwd=tmp_path)
    assert again.returncode == 1
    assert again.stderr == (
        "domus: new.params exists; refusing to overwrite a params file (it may hold a "
        "disk's only key)\n  hint: remove it first or choose another name\n"
    )


def normalised(text: str) -> list[str]:
    return re.sub(r"\d+\.\d s\b", "0.0 s", text).splitlines()


def test_a_failed_build_says_what_failed_and_what_it_kept_from_running(tmp_path):
    site = Site(tmp_path / "site")
    templates = site.directory / "templates" / "root" / "etc"
    templates.mkdir(parents=True)
    (templates / "rc.pre-hooks").write_text("{{ nosuch.thing }}\n")
    site.data["templates"] = "templates"
    site.save()
    done = domus("build", f"config={site.path}", cwd=tmp_path)
    assert done.returncode == 1
    hook = templates / "rc.pre-hooks"
    assert normalised(done.stdout) == [
        f"FAILED   root                 {hook}:1: 'nosuch' is undefined",
        "                                hint: variables a template can use are listed in "
        "docs/templates.md",
        "not run  local:www1           root failed",
        "not run  local:www2           root failed",
        "not run  local:db1            root failed",
        "built    pkg:www1      0.0 s  pkg.img of www1: /usr/pkg",
        "built    pkg:www2      0.0 s  pkg.img of www2: /usr/pkg",
        "built    pkg:db1       0.0 s  pkg.img of db1: /usr/pkg",
        "built    swap:www1     0.0 s  swap.img of www1 (sparse)",
        "built    swap:www2     0.0 s  swap.img of www2 (sparse)",
        "built    swap:db1      0.0 s  swap.img of db1 (sparse)",
        "not run  xen:www1             root failed",
        "not run  xen:www2             root failed",
        "not run  xen:db1              root failed",
        "6 built, 0 up to date, 1 failed, 6 not run in 0.0 s",
    ]
    assert "Traceback" not in done.stderr
    assert "\033[" not in done.stdout  # not a terminal: no colour


def test_a_build_with_nothing_to_do_says_so_in_one_line(tmp_path):
    site = Site(tmp_path / "site")
    site.build()
    done = domus("build", f"config={site.path}", cwd=tmp_path)
    assert done.returncode == 0
    assert normalised(done.stdout) == ["0 built, 13 up to date in 0.0 s"]
    assert done.stderr == ""


def slow_makefs(directory: Path, marker: Path) -> dict[str, str]:
    directory.mkdir()
    script = directory / "makefs"
    script.write_text(f"#!/bin/sh\ntouch '{marker}'\nexec sleep 60\n")
    script.chmod(0o755)
    return {"PATH": f"{directory}:{os.environ['PATH']}"}


@pytest.mark.parametrize(
    ("signum", "status", "line"),
    [(signal.SIGTERM, 143, "domus: terminated"), (signal.SIGINT, 130, "domus: interrupted")],
    ids=["SIGTERM", "Ctrl-C"],
)
@pytest.mark.parametrize("command", ["build", "nightly"])
def test_a_signal_ends_a_build_with_its_status_and_one_line(
    tmp_path, signum, status, line, command
):
    site = Site(tmp_path / "site")
    marker = tmp_path / "makefs-started"
    process = subprocess.Popen(
        [str(REPO / "domus"), command, f"config={site.path}"],
        cwd=tmp_path,
        env={**os.environ, **slow_makefs(tmp_path / "bin", marker)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert time.monotonic() < deadline and process.poll() is None, process.communicate()
        time.sleep(0.05)
    process.send_signal(signum)
    out, err = process.communicate(timeout=60)
    assert process.returncode == status, err
    assert err.splitlines()[-1] == line
    assert "Traceback" not in err
    # the summary, and the nightly's log, say the run did not end by itself
    (summary,) = [line for line in out.splitlines() if " up to date" in line] or [
        line
        for log in (site.output / "logs").glob("*.log")
        for line in log.read_text().splitlines()
        if " up to date" in line
    ]
    assert ", interrupted in root in " in summary
    for log in (site.output / "logs").glob("nightly-*.log"):
        assert log.read_text().splitlines()[-1].startswith(f"domus nightly: {line[7:]} after ")


def test_an_unexpected_exception_is_one_line_unless_debugging(monkeypatch, capsys):
    from tasks import cli

    def broken(args):
        raise ZeroDivisionError("division by zero")

    summary, _, arguments = cli.COMMANDS["gc"]
    monkeypatch.setitem(cli.COMMANDS, "gc", (summary, broken, arguments))
    assert cli.main(["gc"]) == 1
    assert capsys.readouterr().err == (
        "domus: unexpected ZeroDivisionError: division by zero\n"
        "  hint: this is a bug in domus; DOMUS_DEBUG=1 shows where it happened\n"
    )
    monkeypatch.setattr(cli, "DEBUG", True)
    with pytest.raises(ZeroDivisionError):
        cli.main(["gc"])


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("Welcome to {{ name }\n", 1, "unexpected '}'"),
        ("Welcome\n{{ memory }}\n", 2, "'memory' is undefined"),
        ("Welcome\n{{ name | shout }}\n", 2, "No filter named 'shout'."),
        ("Welcome\n{% include 'local/etc/banner' %}\n", 2, "includes 'local/etc/banner': "),
    ],
    ids=["syntax", "undefined", "filter", "include"],
)
@pytest.mark.parametrize("command", ["build", "nightly"])
def test_a_template_error_fails_its_task_naming_the_template_and_line(
    tmp_path, text, line, message, command
):
    site = Site(tmp_path / "site")
    site.data["templates"] = "templates"
    site.save()
    motd = site.directory / "templates" / "local" / "etc" / "motd"
    motd.parent.mkdir(parents=True)
    motd.write_text(text)
    done = domus(command, f"config={site.path}", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    output = done.stdout + done.stderr
    assert f"{motd}:{line}: {message}" in output
    assert re.search(r"^(FAILED +|failed: )local:www1\b", output, re.M)
    assert "bug in domus" not in output
    if command == "build" and "undefined" in message:
        assert "`./domus render www1 local/etc/motd --context`" in done.stdout


@pytest.mark.parametrize(
    "command",
    [
        ["status", "nosuch"],
        ["check", "nosuch"],
        ["render", "nosuch", "etc/fstab"],
        ["diff", "local:nosuch"],
        ["show", "local:nosuch:/etc/rc"],
        ["ls", "local:nosuch:/etc"],
        ["converge", "nosuch"],
        ["converge", "--dry-run", "nosuch"],
        ["reprovision", "nosuch"],
        ["generations", "pkg:nosuch"],
        ["activate", "pkg:nosuch", "abc"],
        ["rollback", "pkg:nosuch"],
        ["pin", "pkg:nosuch"],
        ["unpin", "pkg:nosuch"],
    ],
    ids=" ".join,
)
def test_an_unknown_domain_is_a_usage_error_worded_the_same_everywhere(tmp_path, command):
    site = Site(tmp_path / "site")
    done = domus(*command, f"config={site.path}", cwd=tmp_path)
    assert (done.returncode, done.stderr) == (
        2,
        f"domus: no domain named nosuch in {site.path}\n  hint: the domains are db1, www1, www2\n",
    )


@pytest.mark.parametrize(
    "command", [["clean"], ["forget"], ["info", "root"], ["ignore", "root"], ["reset-dep"]]
)
def test_the_doit_commands_exit_0_when_they_worked(tmp_path, command):
    site = Site(tmp_path / "site")
    for _ in range(2):  # on a clean tree, then after a build
        done = domus("build", *command, f"config={site.path}", cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        site.build()


def test_domus_runs_through_a_chain_of_symlinks_from_any_directory(tmp_path):
    (tmp_path / "bin").mkdir()
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "domus").symlink_to(REPO / "domus")
    (tmp_path / "bin" / "domus").symlink_to("../lib/domus")  # relative, as ln -s makes
    site = Site(tmp_path / "site")
    done = subprocess.run(
        [str(tmp_path / "bin" / "domus"), "status", f"config={site.path}"],
        capture_output=True,
        text=True,
        cwd=tmp_path / "lib",
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "root" in done.stdout


@pytest.mark.parametrize("name", [name for name in COMMANDS if name != "test"])
def test_every_command_has_domus_own_help_both_ways(tmp_path, name):
    dashed = domus(name, "--help", cwd=tmp_path)
    asked = domus("help", name, cwd=tmp_path)
    assert dashed == asked
    assert dashed.returncode == 0, dashed.stderr
    assert dashed.stdout.startswith(f"usage: ./domus {name} ")
    assert "doit -- automation tool" not in dashed.stdout


def test_build_help_lists_domus_options_and_the_doit_commands_it_passes_on(tmp_path):
    done = domus("build", "--help", cwd=tmp_path)
    assert "-n, --dry-run" in done.stdout
    assert "-j N, --jobs N" in done.stdout
    for command in ("list", "info", "clean", "forget", "ignore", "reset-dep", "dumpdb"):
        assert re.search(rf"^  {command} +\S", done.stdout, re.M), command
    assert "strace" not in done.stdout
    assert domus("build", "strace", cwd=tmp_path).returncode == 2


def test_version_is_the_project_version(tmp_path):
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    done = domus("--version", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, f"domus {project['version']}\n")


def test_build_dry_run_says_what_would_run_and_builds_nothing(tmp_path):
    site = Site(tmp_path / "site")
    for flag in ("-n", "--dry-run"):
        done = domus("build", flag, f"config={site.path}", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert re.search(r"^www1 +local +build ", done.stdout, re.M), done.stdout
        assert not site.image("root.img").exists()
    done = domus("build", "-j", "2", "-v", f"config={site.path}", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert site.image("root.img").exists()


def test_generations_and_check_speak_json(tmp_path):
    import json

    site = Site(tmp_path / "site")
    site.build()
    listed = json.loads(domus("generations", "--json", f"config={site.path}", cwd=tmp_path).stdout)
    root = next(slot for slot in listed if slot["image"] == "root")
    assert [g["active"] for g in root["generations"]] == [True]
    checked = domus("check", "--json", f"config={site.path}", cwd=tmp_path)
    findings = json.loads(checked.stdout)
    assert {"subject", "check", "problem", "ok"} <= set(findings[0])
    assert checked.returncode == (0 if all(f["ok"] for f in findings) else 1)


def test_bash_completes_commands_and_options_from_the_parser(tmp_path):
    script = tmp_path / "domus.bash"
    script.write_text(domus("completion", "bash", cwd=tmp_path).stdout)
    done = subprocess.run(
        [
            "bash",
            "-c",
            f"source {script}; for line in 'domus sta' './domus build --dr'; do "
            "COMP_WORDS=($line); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _shtab_domus; "
            'echo "${COMPREPLY[*]}"; done',
        ],
        capture_output=True,
        text=True,
    )
    assert done.stdout.split("\n")[:2] == ["status", "--dry-run"], done.stderr
    zsh = domus("completion", "zsh", cwd=tmp_path).stdout
    assert zsh.startswith("#compdef domus\n")
