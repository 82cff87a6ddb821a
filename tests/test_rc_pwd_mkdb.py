"""/etc/rc.d/pwd_mkdb: users added to master.passwd exist for getpwnam(3) from the next boot.

The script is run through NetBSD's real rc.subr under a POSIX sh, in a private mount
namespace whose /etc is a test directory (as /etc is /local/etc in a domU); pwd_mkdb is
NetBSD's, so a stand-in records its call. Its place in the boot is checked with a tiny
rcorder over the rcorder lines of NetBSD's own rc.d scripts.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from graphlib import TopologicalSorter
from pathlib import Path

import pytest

from tasks.edits.rcconf import set_rc_vars
from tasks.kinds.local import context as local_context
from tasks.recipes.templated import render_group
from tasks.render import Templates
from tasks.site import load_site
from tests.conftest import NETBSD, REPO

SCRIPT = "etc/rc.d/pwd_mkdb"
SHELLS = {"dash": ["dash"], "bash --posix": ["bash", "--posix"]}

# The stand-in does what pwd_mkdb does to the files the script looks at: it writes both
# databases (newer than master.passwd) and records how it was called.
PWD_MKDB = """#!/bin/sh
echo "pwd_mkdb $*" >> "$PWD_MKDB_LOG"
: > /etc/pwd.db
: > /etc/spwd.db
"""


@pytest.fixture(scope="module")
def site():
    return load_site(REPO / "config" / "site.yaml")


def rendered(site, name: str = "www1") -> str:
    domu = next(d for d in site.domus if d.name == name)
    return Templates(None).render(f"local/{SCRIPT}", local_context(site, domu))


needs_namespace = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="needs root and unshare(1) for a private mount namespace",
)


@pytest.fixture(params=sorted(SHELLS))
def shell(request):
    if shutil.which(SHELLS[request.param][0]) is None:
        pytest.skip(f"needs {request.param}")
    return SHELLS[request.param]


def domu_etc(site, tmp_path: Path) -> Path:
    """A domU's /etc as the script finds it: NetBSD's rc.subr and rc.conf, the script."""
    etc = tmp_path / "etc"
    (etc / "rc.d").mkdir(parents=True)
    (etc / "defaults").mkdir()
    shutil.copy(NETBSD / "rc.subr", etc / "rc.subr")
    shutil.copy(NETBSD / "defaults" / "rc.conf", etc / "defaults" / "rc.conf")
    (etc / "rc.conf").write_text(set_rc_vars((NETBSD / "rc.conf").read_text(), {}))
    script = etc / "rc.d" / "pwd_mkdb"
    script.write_text(rendered(site))
    script.chmod(0o555)
    (etc / "master.passwd").write_text("root:*:0:0::0:0:Charlie &:/root:/bin/sh\n")
    (etc / "master.passwd").chmod(0o600)
    return etc


def boot(etc: Path, shell: list[str], tmp_path: Path) -> tuple[subprocess.CompletedProcess, list]:
    """Run `/etc/rc.d/pwd_mkdb start` as /etc/rc does, with `etc` mounted on /etc."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "pwd_mkdb").write_text(PWD_MKDB)
    (bin_dir / "pwd_mkdb").chmod(0o755)
    log = tmp_path / "pwd_mkdb.log"
    log.unlink(missing_ok=True)
    run = " ".join(shell) + " /etc/rc.d/pwd_mkdb start"
    result = subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            f'mount --bind "$ETC" /etc && {run}',
        ],
        capture_output=True,
        text=True,
        env={
            "PATH": f"{bin_dir}:/usr/sbin:/usr/bin:/sbin:/bin",
            "ETC": str(etc),
            "PWD_MKDB_LOG": str(log),
        },
        timeout=60,
    )
    return result, (log.read_text().splitlines() if log.exists() else [])


def age(path: Path, seconds: int) -> None:
    """Set the file's mtime `seconds` before now."""
    when = path.stat().st_mtime - seconds
    os.utime(path, (when, when))


REBUILT = ["pwd_mkdb -p /etc/master.passwd"]


@needs_namespace
def test_missing_databases_are_built(site, shell, tmp_path):
    etc = domu_etc(site, tmp_path)
    result, calls = boot(etc, shell, tmp_path)
    assert result.returncode == 0, result.stderr
    assert calls == REBUILT
    assert "Rebuilding the password databases" in result.stdout


@needs_namespace
@pytest.mark.parametrize("missing", ["pwd.db", "spwd.db"])
def test_one_missing_database_rebuilds_both(site, shell, tmp_path, missing):
    etc = domu_etc(site, tmp_path)
    for db in ("pwd.db", "spwd.db"):
        (etc / db).write_bytes(b"db")
    age(etc / "master.passwd", 60)
    (etc / missing).unlink()
    result, calls = boot(etc, shell, tmp_path)
    assert result.returncode == 0, result.stderr
    assert calls == REBUILT


@needs_namespace
def test_a_user_added_to_master_passwd_rebuilds_the_databases(site, shell, tmp_path):
    etc = domu_etc(site, tmp_path)
    for db in ("pwd.db", "spwd.db"):
        (etc / db).write_bytes(b"db")
        age(etc / db, 60)
    with (etc / "master.passwd").open("a") as master:
        master.write("_hello:*:1001:1001::0:0:hello daemon:/var/empty:/sbin/nologin\n")
    result, calls = boot(etc, shell, tmp_path)
    assert result.returncode == 0, result.stderr
    assert calls == REBUILT
    # the databases are now newer: the next boot leaves them alone
    result, calls = boot(etc, shell, tmp_path)
    assert (result.returncode, calls, result.stdout) == (0, [], "")


@needs_namespace
def test_databases_newer_than_master_passwd_are_left_alone(site, shell, tmp_path):
    etc = domu_etc(site, tmp_path)
    age(etc / "master.passwd", 60)
    for db in ("pwd.db", "spwd.db"):
        (etc / db).write_bytes(b"db")
    result, calls = boot(etc, shell, tmp_path)
    assert (result.returncode, calls, result.stdout, result.stderr) == (0, [], "", "")


# --- its place in the boot --------------------------------------------------------------------

# The rcorder lines of NetBSD's rc.d scripts from fsck to the daemons, as NetBSD's source has
# them (src/etc/rc.d/NAME, read at the git commit named; each file's $NetBSD$ revision).
# root, swap1, cgd, mountcritlocal and random_seed are read from ../shared's fixtures.
NETBSD_RC_D = {
    # name: (source commit, revision, PROVIDE, REQUIRE, BEFORE)
    "CRITLOCALMOUNTED": ("0a9098d00fea", "1.1", "CRITLOCALMOUNTED", "mountcritlocal", ""),
    "DAEMON": (
        "0bc44e951af6",
        "1.5",
        "DAEMON",
        "accounting aftermountlkm amd cleartmp dmesg ipmon ipnat ipsec ldconfig named network"
        " nonlocalswap nfslocking pwcheck quota savecore securelevel sysctl sysdb virecover ypbind",
        "",
    ),
    "LOGIN": ("08a9f6319088", "1.8", "LOGIN", "DAEMON", ""),
    "NETWORKING": ("e00fb37f1600", "1.1", "NETWORKING NETWORK", "network dhclient altqd", ""),
    "SERVERS": (
        "04e705cf5acb",
        "1.5",
        "SERVERS",
        "ipmon kdc newsyslog ppp savecore syslogd ike",
        "",
    ),
    "bootconf.sh": ("20d5e1dbca6c", "1.13", "bootconf", "mountcritlocal", ""),
    "clearcritlocal": ("880ddc2448d1", "1.2", "", "mountcritlocal", "MOUNTCRITLOCAL"),
    "cleartmp": ("2132b240d44e", "1.10.30.1", "cleartmp", "mountall", "DAEMON"),
    "cron": ("62f5b7552587", "1.4", "cron", "LOGIN", ""),
    "dhcpcd": ("07c9465681a1", "1.6", "dhcpcd", "network mountcritlocal", "NETWORKING"),
    "fsck": ("03fc74cea31a", "1.3", "fsck", "localswap", ""),
    "httpd": ("196266028238", "1.1.4.2", "httpd", "LOGIN", ""),
    "lvmlockdir": ("8312d9bf7815", "1.2", "", "mountcritlocal", "CRITLOCALMOUNTED"),
    "mountall": ("0498e9c42cbb", "1.13", "mountall", "mountcritremote named ypbind", ""),
    "mountcritremote": (
        "0a9098d00fea",
        "1.11",
        "mountcritremote",
        "NETWORKING root CRITLOCALMOUNTED",
        "",
    ),
    "network": (
        "0337067db836",
        "1.20",
        "network",
        "ipfilter ipsec mountcritlocal root tty sysctl",
        "",
    ),
    "ntpd": ("0112d907ef58", "1.6", "ntpd", "DAEMON", "LOGIN"),
    "sshd": ("0088a2a043db", "1.37", "sshd", "LOGIN", ""),
    "sysdb": ("16dd22ad2f11", "1.2.4.2", "sysdb", "mountcritremote", ""),
    "syslogd": ("0112d907ef58", "1.12", "syslogd", "mountcritremote sysdb wscons", "SERVERS"),
    "ttys": ("08770e5be54a", "1.6.50.1", "tty", "root bootconf", ""),
}
FIXTURES = ("root", "swap1", "cgd", "mountcritlocal", "random_seed")
# What runs after mountcritlocal and looks users up, directly or through a script it needs.
USERS_RESOLVED_BY = [
    "bootconf",
    "tty",
    "network",
    "dhcpcd",
    "CRITLOCALMOUNTED",
    "mountcritremote",
    "sysdb",
    "cleartmp",
    "syslogd",
    "DAEMON",
    "ntpd",
    "LOGIN",
    "sshd",
    "cron",
    "httpd",
]


def rcorder_lines(text: str) -> dict[str, list[str]]:
    """PROVIDE, REQUIRE and BEFORE of an rc.d script, as rcorder(8) reads them."""
    return {
        key: " ".join(re.findall(rf"^# {key}:\s*(.*)$", text, re.M)).split()
        for key in ("PROVIDE", "REQUIRE", "BEFORE")
    }


def rc_d_scripts(site) -> dict[str, dict[str, list[str]]]:
    scripts = {
        name: {"PROVIDE": p.split(), "REQUIRE": r.split(), "BEFORE": b.split()}
        for name, (_, _, p, r, b) in NETBSD_RC_D.items()
    }
    for name in FIXTURES:
        scripts[name] = rcorder_lines((NETBSD / "rc.d" / name).read_text())
    scripts["pwd_mkdb"] = rcorder_lines(rendered(site))
    return scripts


def order_graph(scripts: dict[str, dict[str, list[str]]]) -> dict[str, set[str]]:
    """script -> the scripts that must run before it (rcorder's edges; unknown names, which
    rcorder only warns about, order nothing)."""
    providers: dict[str, set[str]] = {}
    for name, lines in scripts.items():
        for provided in lines["PROVIDE"]:
            providers.setdefault(provided, set()).add(name)
    before: dict[str, set[str]] = {name: set() for name in scripts}
    for name, lines in scripts.items():
        for required in lines["REQUIRE"]:
            before[name] |= providers.get(required, set())
        for later in lines["BEFORE"]:
            for other in providers.get(later, set()):
                before[other].add(name)
    return before


def runs_before(graph: dict[str, set[str]], name: str) -> set[str]:
    """Every script that runs before `name` in any order rcorder may print."""
    seen: set[str] = set()
    todo = list(graph[name])
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(graph[current])
    return seen


def provider(scripts, provided: str) -> str:
    (name,) = [n for n, lines in scripts.items() if provided in lines["PROVIDE"]]
    return name


def test_rcorder_reads_one_provide_a_require_and_a_before(site):
    assert rcorder_lines(rendered(site)) == {
        "PROVIDE": ["pwd_mkdb"],
        "REQUIRE": ["mountcritlocal"],
        "BEFORE": ["bootconf", "network", "CRITLOCALMOUNTED"],
    }


def test_it_runs_after_mountcritlocal_and_before_anything_that_looks_users_up(site):
    scripts = rc_d_scripts(site)
    graph = order_graph(scripts)
    # no cycle: rcorder would otherwise break one, dropping an edge of its choosing
    order = list(TopologicalSorter(graph).static_order())
    earlier = runs_before(graph, "pwd_mkdb")
    # /local is writable (root), and /var, /tmp and /etc are mounted (mountcritlocal)
    assert {"root", "swap1", "fsck", "mountcritlocal"} <= earlier
    for provided in USERS_RESOLVED_BY:
        name = provider(scripts, provided)
        assert "pwd_mkdb" in runs_before(graph, name), provided
        assert order.index("pwd_mkdb") < order.index(name)


def test_it_comes_right_after_mountcritlocal(site):
    """Of what NetBSD runs once mountcritlocal is done, only random_seed (the entropy seed),
    clearcritlocal (emptying /var/run) and lvmlockdir (which provides no name to come before;
    it looks up root alone, in every database a release ships) are not ordered after it."""
    scripts = rc_d_scripts(site)
    graph = order_graph(scripts)
    after_mountcritlocal = {n for n in scripts if "mountcritlocal" in runs_before(graph, n)}
    unordered = (
        after_mountcritlocal
        - {"pwd_mkdb"}
        - {n for n in scripts if "pwd_mkdb" in runs_before(graph, n)}
    )
    assert unordered == {"random_seed", "clearcritlocal", "lvmlockdir"}


def test_every_local_image_gets_it_executable(site):
    """NetBSD installs rc.d scripts 0555, and rc.subr ignores one that is not executable."""
    domu = next(d for d in site.domus if d.name == "www1")
    modes = {
        item.path: item.mode
        for item in render_group(Templates(None), "local", local_context(site, domu))
    }
    assert modes[SCRIPT] == 0o555
    assert modes["etc/rc.conf.d/root"] == 0o644
    assert 'warn "Ignoring non-executable file $_file"' in (NETBSD / "rc.subr").read_text()


# -- what /etc/rc runs after a converge -------------------------------------------------------

# rc.subr's run_rc_script: the names it skips as scratch files
SCRATCH = re.compile(r".*(?:[~#]|\.OLD|\.orig|,v)")


def boot_scripts(local) -> dict[str, str]:
    """The scripts of /etc/rc.d that NetBSD's /etc/rc runs from a local.img (an
    ImageReader), with their text: rcorder(8) is given every name of /etc/rc.d (`echo
    /etc/rc.d/*`) and orders every file it reads, one PROVIDE named by several files
    included; run_rc_script then skips scratch names and files that are not executable."""
    names = sorted(
        path[len("etc/rc.d/") :]
        for path in local.paths()
        if path.startswith("etc/rc.d/") and "/" not in path[len("etc/rc.d/") :]
    )
    given = [name for name in names if not name.startswith(".")]
    provided: dict[str, list[str]] = {}
    for name in given:
        for provision in rcorder_lines(local.text(f"etc/rc.d/{name}"))["PROVIDE"]:
            provided.setdefault(provision, []).append(name)
    twice = {p: n for p, n in provided.items() if len(n) > 1}
    assert twice == {}, f"rcorder orders and /etc/rc runs each of {twice}"
    return {
        name: local.text(f"etc/rc.d/{name}")
        for name in given
        if not SCRATCH.fullmatch(name) and local.stat(f"etc/rc.d/{name}").mode & 0o111
    }


def change_pwd_mkdb(site, line: str) -> str:
    templates = site.directory / "templates"
    (templates / "local" / "etc" / "rc.d").mkdir(parents=True, exist_ok=True)
    text = (REPO / "templates" / "local" / SCRIPT).read_text() + line
    (templates / "local" / SCRIPT).write_text(text)
    site.data["templates"] = "templates"
    site.save()
    return line


def test_a_converged_rc_d_script_is_the_only_one_rc_runs_its_backups_kept_aside(tmp_path):
    from tests.image_reader import ImageReader
    from tests.sites import Site

    site = Site(tmp_path / "site")
    site.data["blockdev"] = {"backend": "none"}  # db1 through debugfs, www1 rewritten
    site.data["converge"] = {"keep_backups": 1}
    site.save()
    site.build()
    readers = {"db1": "ext2fs", "www1": "ffs"}
    before = {
        n: boot_scripts(ImageReader(site.image(n, "local.img"), fs)) for n, fs in readers.items()
    }
    # a backup an earlier converge kept in /etc/rc.d, where it runs at every boot
    stray = tmp_path / "stray"
    image = site.image("db1", "local.img")
    stray.write_text(ImageReader(image, "ext2fs").text(SCRIPT))
    for command in (
        f"write {stray} /etc/rc.d/pwd_mkdb.domus-20200101T000000",
        "sif /etc/rc.d/pwd_mkdb.domus-20200101T000000 mode 0100555",
    ):
        subprocess.run(["debugfs", "-w", "-R", command, str(image)], check=True)
    with pytest.raises(AssertionError, match="rcorder orders and /etc/rc runs each of"):
        boot_scripts(ImageReader(image, "ext2fs"))
    for line in ("# the site's first change\n", "# and its second\n"):
        change_pwd_mkdb(site, line)
        run = site.build()
        assert "(debugfs)" in run.stderr and "(rewrite)" in run.stderr
        if line.startswith("# the site's first"):  # moved aside, then the oldest of two
            assert "/etc/rc.d.domus-backups/pwd_mkdb.domus-20200101T000000" in run.stderr
    for name, fs in readers.items():
        local = ImageReader(site.image(name, "local.img"), fs)
        after = boot_scripts(local)
        assert set(after) == set(before[name])
        assert after["pwd_mkdb"].endswith('run_rc_command "$1"\n# and its second\n')
        assert {n: t for n, t in after.items() if n != "pwd_mkdb"} == {
            n: t for n, t in before[name].items() if n != "pwd_mkdb"
        }
        kept = sorted(p for p in local.paths() if p.startswith("etc/rc.d.domus-backups/"))
        assert len(kept) == 1 and kept[0].startswith("etc/rc.d.domus-backups/pwd_mkdb.domus-")
        assert local.text(kept[0]).endswith("# the site's first change\n")  # the newest one
        backups = local.stat("etc/rc.d.domus-backups")
        assert (backups.type, backups.mode, backups.uid, backups.gid) == ("dir", 0o700, 0, 0)
    assert site.build().ran == set()
