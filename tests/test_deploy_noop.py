"""What lets a deploy leave a dom0 alone, without any host: the record a dom0 keeps of its
last deploy and what invalidates it, the digest of what a deploy would send, the roll
forward of a rollback there, and what `deploy --check` says of the status there. The same
with real hosts: tests/test_deploy.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.deploy import settled
from tasks.deploy.check import status_lines
from tasks.deploy.stage import NEVER_DEPLOYED, prepare
from tasks.deploy.unchanged import digest, holds, pending
from tasks.site import load_site
from tests.commands import active, change_root_template, domus
from tests.sites import REPO, Site
from tests.test_deploy_site import hosts_site


@pytest.fixture
def built(tmp_path: Path) -> Site:
    """A dom0's output as a deploy leaves it: two root generations, the newer active."""
    site = Site(tmp_path / "dom0")
    site.build()
    change_root_template(site, "# second generation\n")
    assert site.build().ran == {"root"}
    return site


def read(output: Path) -> dict:
    """As a deploy's round trip reads it: the script on standard input, stdlib alone."""
    done = subprocess.run(
        [sys.executable, "-I", "-", "read", str(output)],
        input=Path(settled.__file__).read_text(),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def test_the_record_holds_until_the_host_changes_what_a_deploy_left(built: Site) -> None:
    output = built.output
    assert read(output)["digest"] is None  # never recorded: the playbook runs
    settled.record(output, "d1")
    answer = read(output)
    assert answer["digest"] == "d1" and answer["state"] == answer["now"]
    assert holds(answer, "d1") and not holds(answer, "d2")
    assert answer["active"]["root"] == active(built)
    # a running domU writes its images all the time: that is not a change
    local = built.image("www1", "local.img")
    with open(local, "r+b") as image:
        image.write(b"guest")
    assert holds(read(output), "d1")
    # a rollback there is
    assert domus(built, "rollback", "root").returncode == 0
    assert not holds(read(output), "d1")
    settled.record(output, "d1")
    assert holds(read(output), "d1")
    # and so is an image gone, a file of domus there edited, its site rewritten
    for change in (
        lambda: built.image("www2", "swap.img").unlink(),
        lambda: (output / "deploy" / "site.yaml").write_text("edited\n"),
        lambda: (output / "deploy" / "domus" / "dodo.py").write_text("edited\n"),
    ):
        (output / "deploy" / "domus").mkdir(parents=True, exist_ok=True)
        settled.record(output, "d1")
        change()
        assert not holds(read(output), "d1")
    # Python's byte code there is not
    settled.record(output, "d1")
    (output / "deploy" / "domus" / "__pycache__").mkdir()
    assert holds(read(output), "d1")
    # a record that cannot be read is no record
    (output / settled.RECORD).write_text("{")
    assert not holds(read(output), "d1")


def test_a_rollback_there_is_rolled_forward_but_a_pin_holds(built: Site) -> None:
    newer = active(built)
    assert domus(built, "rollback", "root").returncode == 0
    older = active(built)
    forward = [sys.executable, "-m", "tasks.deploy.forward", f"config={built.path}"]
    done = subprocess.run([*forward, f"root={newer}"], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"root: generation {newer} active again, was {older}\n"
    assert active(built) == newer
    again = subprocess.run([*forward, f"root={newer}"], capture_output=True, text=True, cwd=REPO)
    assert (again.returncode, again.stdout) == (0, "")
    assert domus(built, "rollback", "root").returncode == 0
    assert domus(built, "pin", "root").returncode == 0
    done = subprocess.run([*forward, f"root={newer}"], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert active(built) == older
    assert f"pinned to {older}" in done.stdout
    usage = subprocess.run([*forward, "root"], capture_output=True, text=True, cwd=REPO)
    assert usage.returncode == 2


def test_the_digest_follows_what_a_host_would_be_sent(tmp_path: Path) -> None:
    site_file = hosts_site(tmp_path)
    templates = tmp_path / "site" / "templates" / "local" / "etc"
    templates.mkdir(parents=True)
    (templates / "motd").write_text("one\n")
    site_file.data["templates"] = "templates"
    site_file.save()
    site = load_site(site_file.path)
    alpha, beta = site.host("alpha"), site.host("beta")
    first = {host.name: digest(site, prepare(site, host)) for host in (alpha, beta)}
    assert first["alpha"] != first["beta"]
    assert digest(site, prepare(site, alpha)) == first["alpha"]
    # the domUs of the other hosts, which its garbage collection keeps
    kept = prepare(site, alpha)
    kept.role["keep"] = ["db1"]
    assert digest(site, kept) != first["alpha"]
    # the template is an input of every host
    (templates / "motd").write_text("two\n")
    assert digest(site, prepare(site, alpha)) != first["alpha"]
    assert digest(site, prepare(site, beta)) != first["beta"]
    # a change to one domU's settings is a change of its host's site alone
    site_file.data["domains"]["db1"]["memory"] = "320m"
    site_file.save()
    changed = load_site(site_file.path)
    again = {host.name: digest(changed, prepare(changed, host)) for host in (alpha, beta)}
    assert again["alpha"] == digest(site, prepare(site, alpha))
    assert again["beta"] != digest(site, prepare(site, beta))


def test_a_move_or_a_retirement_is_work_for_both_hosts(tmp_path: Path) -> None:
    site_file = hosts_site(tmp_path)
    site = load_site(site_file.path)
    record = site.output / "deploy" / "placement.json"
    record.parent.mkdir(parents=True)
    record.write_text('{"www1": "alpha", "www2": "alpha", "db1": "alpha", "old": "beta"}\n')
    assert pending(site) == {"alpha": "db1 moves to beta", "beta": "db1 moves here from alpha"}
    record.write_text('{"www1": "alpha", "www2": "alpha", "db1": "beta", "old": "beta"}\n')
    assert pending(site) == {"beta": "old to retire"}


def status_result(rc: int, stdout: str = "", stderr: str = "") -> dict:
    return {
        "output": {"Status there": stdout},
        "rc": {"Status there": rc},
        "stderr": {"Status there": stderr},
    }


def test_check_says_what_the_status_there_says_or_why_it_could_not() -> None:
    items = [
        {"domain": None, "image": "root", "action": "up to date", "why": []},
        {"domain": "www1", "image": "local", "action": "converge", "why": ["a", "b"]},
        {"domain": "gone", "image": "local.img", "action": "retire (gc)", "why": ["x"]},
        {"domain": "moving", "image": "local.img", "action": "retire (gc)", "why": ["x"]},
    ]
    text = json.dumps({"site": "s", "items": items})
    assert status_lines(status_result(0, text), {"moving"}) == (
        ["www1 local: converge (a; b)", "gone local.img: retire (gc) (x)"],
        True,
    )
    assert status_lines(status_result(0, json.dumps({"items": items[:1]})), set()) == (
        ["nothing to build or converge there"],
        True,
    )
    failed = "Traceback (most recent call last):\nOSError: [Errno 28] No space left on device\n"
    lines, told = status_lines(status_result(1, "", failed), set())
    assert (lines, told) == (
        ["status there failed: OSError: [Errno 28] No space left on device"],
        False,
    )
    assert status_lines(status_result(1, "", NEVER_DEPLOYED + "\n"), set())[1] is True


def test_a_record_is_replaced_whole(built: Site) -> None:
    settled.record(built.output, "d1")
    settled.record(built.output, "d2")
    deploy = built.output / "deploy"
    assert sorted(os.listdir(deploy)) == ["last-deploy.json"]
    assert json.loads((deploy / "last-deploy.json").read_text())["digest"] == "d2"
