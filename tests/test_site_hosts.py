"""`hosts:` and `domains.<name>.host`: the dom0s `./domus deploy` places domUs on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tasks.site import Host, load_site
from tests.test_site import REPO, ROOT, inputs, problems, write_site  # noqa: F401

# every test reads a site whose paths lead to small real inputs
pytestmark = pytest.mark.usefixtures("inputs")

HOSTS = """\
dom0: netbsd
hosts:
  alpha: {address: 192.0.2.1}
  beta:
    address: dom0-b.example.org
    user: domus
    port: 2222
    dom0: linux
    output: /srv/domus
    units: 8
    python: /usr/pkg/bin/python3.12
"""


def test_hosts_are_read_with_their_defaults(tmp_path: Path) -> None:
    site = load_site(
        write_site(
            tmp_path,
            HOSTS + ROOT + "defaults: {host: alpha}\ndomains:\n  www1:\n  db1: {host: beta}\n",
        )
    )
    assert site.hosts == (
        Host("alpha", "192.0.2.1", "root", 22, None, None, "netbsd", "/var/domus", 4, "python3"),
        Host(
            "beta",
            "dom0-b.example.org",
            "domus",
            2222,
            None,
            None,
            "linux",
            "/srv/domus",
            8,
            "/usr/pkg/bin/python3.12",
        ),
    )
    assert [(d.name, d.host) for d in site.domus] == [("www1", "alpha"), ("db1", "beta")]
    # the default bridge is the one of the dom0 the domU runs on, not of the site
    assert [d.vif for d in site.domus] == [("bridge=bridge0",), ("bridge=xenbr0",)]
    assert [d.name for d in site.domus_on("beta")] == ["db1"]


def test_a_site_without_hosts_is_for_this_machine(tmp_path: Path) -> None:
    site = load_site(write_site(tmp_path, "dom0: netbsd\n" + ROOT + "domains: {www1: }\n"))
    assert site.hosts == ()
    assert site.domus[0].host is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            HOSTS + ROOT + "domains:\n  www1: {host: gamma}\n",
            "17: domains.www1.host: expected one of the hosts alpha, beta (hosts, line 3), "
            "got 'gamma'",
        ),
        (
            HOSTS + ROOT + "domains:\n  www1: {host: alpha}\n  db1:\n",
            "18: domains.db1: no host: with `hosts` (line 3) every domain names the dom0 it "
            "runs on; set domains.db1.host or defaults.host",
        ),
        (
            "dom0: netbsd\n" + ROOT + "domains:\n  www1: {host: alpha}\n",
            "7: domains.www1.host: names host 'alpha', but the site has no `hosts`; add it "
            "under hosts: (with its address), or remove the key to build for this machine",
        ),
        (
            "dom0: netbsd\nhosts:\n  a: {address: h, output: /x}\n  b: {address: h, output: /x}\n"
            + ROOT
            + "defaults: {host: a}\ndomains: {www1: }\n",
            "4: hosts.b: same address, port and output as hosts.a (line 3); expected each "
            "host to have its own output directory",
        ),
        (
            "dom0: netbsd\nhosts:\n  a: {address: h, output: relative/dir}\n"
            + ROOT
            + "defaults: {host: a}\ndomains: {www1: }\n",
            "3: hosts.a.output: expected an absolute path on the dom0, without a comma (xl "
            "ends a disk spec at one), got 'relative/dir'",
        ),
        (
            "dom0: netbsd\nhosts:\n  a: {adress: h}\n"
            + ROOT
            + "defaults: {host: a}\ndomains: {www1: }\n",
            "3: hosts.a.adress: unknown key; did you mean 'address'? expected one of: address, "
            "user, port, identity, host_key, dom0, output, units, python",
        ),
        (
            "dom0: netbsd\nhosts:\n  a: {address: h}\n  a: {address: i}\n"
            + ROOT
            + "defaults: {host: a}\ndomains: {www1: }\n",
            "4: hosts.a: duplicate key; first set on line 3 (YAML would keep only the last)",
        ),
        (
            "dom0: netbsd\nhosts:\n  a: {address: h, port: 0}\n"
            + ROOT
            + "defaults: {host: a}\ndomains: {www1: }\n",
            "3: hosts.a.port: expected an integer from 1 to 65535, got 0",
        ),
    ],
)
def test_bad_hosts(tmp_path: Path, text: str, expected: str) -> None:
    path = write_site(tmp_path, text)
    assert f"{path}:{expected}" in problems(path)


def test_a_bad_host_is_exit_78_naming_file_line_and_key(tmp_path: Path) -> None:
    path = write_site(tmp_path, HOSTS + ROOT + "domains:\n  www1: {host: gamma}\n")
    done = subprocess.run(
        [sys.executable, "-m", "tasks.cli", "generations", f"config={path}"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert done.returncode == 78, done.stderr
    assert f"{path}:17: domains.www1.host: expected one of the hosts" in done.stderr
    assert "Traceback" not in done.stderr
