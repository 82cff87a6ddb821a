"""A move's steps on a dom0 (tasks/deploy/handover.py), run as a deploy runs them there:
`python3 - STEP ...` with the file on standard input, here on directories of this machine;
and the line a failure summary shows."""

from __future__ import annotations

import hashlib
import json
import stat
import subprocess
import sys
from pathlib import Path

from tasks.deploy import handover
from tasks.deploy.cause import cause
from tasks.deploy.run import summary
from tasks.deploy.stage import Prepared
from tasks.site import Host


def step(output: Path, *words: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-", *map(str, (words[0], output, *words[1:]))],
        input=Path(handover.__file__).read_text(),
        capture_output=True,
        text=True,
    )


def dom0(top: Path, name: str, image: bytes | None = None) -> Path:
    output = top / name
    (output / "xen").mkdir(parents=True)
    (output / "images").mkdir()
    if image is not None:
        (output / "images" / "www2").mkdir()
        (output / "images" / "www2" / "local.img").write_bytes(image)
        (output / "xen" / "www2.cfg").write_text("name = 'www2'\n")
    return output


def test_the_old_host_releases_once_and_offers_the_domu_again_when_restored(tmp_path):
    old = dom0(tmp_path, "alpha", b"state")
    released = step(old, "release", "www2", 7)
    assert released.returncode == 0, released.stderr
    record = json.loads(released.stdout)
    assert record == {"number": 7, "sha256": hashlib.sha256(b"state").hexdigest()}
    assert not (old / "xen" / "www2.cfg").exists()
    assert (old / "xen" / "www2.cfg.released").exists()
    # released again (a deploy resumed): the same record, nothing else
    assert json.loads(step(old, "release", "www2", 7).stdout) == record
    assert step(old, "restore", "www2", 7).returncode == 0
    assert (old / "xen" / "www2.cfg").exists()
    assert not (old / "xen" / "www2.cfg.released").exists()
    assert not (old / "images" / "www2" / "released.json").exists()


def test_the_new_host_accepts_only_the_released_image_of_that_move(tmp_path):
    new = dom0(tmp_path, "beta")
    images = new / "images" / "www2"
    images.mkdir()
    (images / ".local.img.move-3").write_bytes(b"an older copy")
    wanted = hashlib.sha256(b"state").hexdigest()
    stale = step(new, "accept", "www2", 3, wanted)
    assert stale.returncode == handover.REFUSED
    assert "is not the local.img released for move 3" in stale.stderr
    assert not (images / "local.img").exists()
    (images / ".local.img.move-3").write_bytes(b"state")
    assert step(new, "accept", "www2", 3, wanted).returncode == 0
    assert (images / "local.img").read_bytes() == b"state"
    # accepted before a kill, converged since: the same move is still accepted
    (images / "local.img").write_bytes(b"state, converged")
    assert step(new, "accept", "www2", 3, wanted).returncode == 0
    # another move finds a local.img there and refuses it
    other = step(new, "accept", "www2", 4, wanted)
    assert other.returncode == handover.REFUSED
    assert "is there already and is another image" in other.stderr
    # taken back before the confirmation: nothing of the move is left there
    (new / "xen" / "www2.cfg").write_text("")
    assert step(new, "discard", "www2", 3).returncode == 0
    assert not images.exists() and not (new / "xen" / "www2.cfg").exists()


def test_a_confirmed_move_leaves_a_private_dated_archive_on_the_old_host(tmp_path):
    old = dom0(tmp_path, "alpha", b"state")
    assert step(old, "release", "www2", 2).returncode == 0
    assert step(old, "archive", "www2", 2, "20261208T000000").returncode == 0
    kept = old / "images" / "www2.moved-20261208T000000"
    assert (kept / "local.img").read_bytes() == b"state"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o700
    assert stat.S_IMODE((kept / "local.img").stat().st_mode) == 0o600
    assert not list((old / "xen").iterdir())
    # archived already (a deploy resumed): nothing to do
    assert step(old, "archive", "www2", 2, "20261208T010000").returncode == 0
    assert [p.name for p in (old / "images").iterdir()] == [kept.name]


def test_an_image_not_released_for_that_move_is_not_archived(tmp_path):
    old = dom0(tmp_path, "alpha", b"state")
    refused = step(old, "archive", "www2", 5, "20261208T000000")
    assert refused.returncode == handover.REFUSED
    assert (old / "images" / "www2" / "local.img").exists()
    assert (old / "xen" / "www2.cfg").exists()


RSYNC_FULL = """\
rsync: [receiver] write failed on "www2/.local.img.move-3": No space left on device (28)
rsync error: error in file IO (code 11) at receiver.c(380) [receiver=3.2.7]
Number of files: 1 (reg: 1)
Total bytes sent: 1,024
Total bytes received: 35
sent 1,024 bytes  received 35 bytes  2,118.00 bytes/sec
total size is 16,777,216  speedup is 15,842.51
"""


def test_a_failure_is_summed_up_by_the_line_that_says_why(tmp_path):
    assert cause(RSYNC_FULL).endswith("No space left on device (28)")
    assert cause(
        "ssh: connect to host 127.0.0.1 port 22: Connection refused\nrsync: "
        "connection unexpectedly closed"
    ) == ("ssh: connect to host 127.0.0.1 port 22: Connection refused")
    assert cause("") == "no output"
    host = Host("beta", "127.0.0.1", "root", 22, None, None, "linux", "/dom0", 4, "python3")
    results = {"beta": {"failed": {"task": "Ship domus and the inputs", "message": RSYNC_FULL}}}
    log = tmp_path / "ansible-20261208T000000.log"
    notes = {"alpha": ["refused: www1 runs on alpha", "www2 moved to beta, but alpha keeps it"]}
    lines, failed = summary([Prepared(host, ["www2"])], results, notes, log)
    # a refusal alone fails no host; a move left unsettled fails its old host
    assert failed == ["beta", "alpha"]
    assert lines[0].startswith("beta   FAILED  Ship domus and the inputs failed: rsync: ")
    assert lines[0].endswith("No space left on device (28)")
    assert lines[1].strip() == f"(see {log})"
