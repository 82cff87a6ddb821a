import dataclasses
import json
import platform
import subprocess
import sys
import typing
from pathlib import Path
from textwrap import dedent

import pytest
import yaml

from tasks.cgd.table import CIPHERS
from tasks.edits.makedev import patch_init_target
from tasks.site import (
    BlockdevSpec,
    ConfigError,
    ConvergeSpec,
    DomU,
    GenerationsSpec,
    ImageSpec,
    PkgSource,
    PkgSpec,
    Problem,
    RootSource,
    RootSpec,
    Site,
    SwapSpec,
    load,
    load_site,
    plain,
    reference_markdown,
)
from tasks.site.netbsd import MAKEDEV_ADD, MAKEDEV_REMOVE
from tasks.site.reader import Table
from tasks.site.settings import DOMAIN, HOST, SITE
from tests.conftest import NETBSD
from tests.makedev_compose import compose_makedev

REPO = Path(__file__).resolve().parents[1]
MiB = 1 << 20
GiB = 1 << 30

# The rc.conf variables every domU gets, spelled out so a change to them shows up here.
BUILTIN_RC = (
    ("rc_configured", "YES"),
    ("critical_filesystems_local", "/local /etc /tmp /var"),
    ("powerd", "YES"),
    ("savecore", "NO"),
    ("sendmail", "NO"),
    ("wscons", "NO"),
    ("random_file", "/local/var/db/entropy-file"),
)

# Four valid lines that open most bad sites below: their problems start on line 5.
ROOT = """\
root:
  source: {tree: ../inputs/root}
  kernel: ../inputs/netbsd-XEN3_DOMU
  size: 400m
"""


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    """Small real input files beside the config directory, reached as ../inputs/..."""
    base = tmp_path / "inputs"
    for directory in ("root/etc", "pkgtree/bin", "templates", "sets", "packages"):
        (base / directory).mkdir(parents=True)
    for name in (
        "netbsd-XEN3_DOMU",
        "root.metalog",
        "sets/base.tgz",
        "sets/etc.tar.xz",
        "packages/bash-5.2.tgz",
        "packages/vim-9.1.tbz",
    ):
        (base / name).write_bytes(b"x")
    (tmp_path / "config").mkdir()
    return base


def write_site(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config" / "site.yaml"
    path.write_text(text)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_site(path)
    return str(caught.value).splitlines()


def domu(name: str, **changes: object) -> DomU:
    """A domU with every built-in default, changed where a test says so."""
    values: dict[str, object] = {
        "name": name,
        "memory": 256,
        "vcpus": 1,
        "vif": ("bridge=xenbr0",),
        "rc_conf": (*BUILTIN_RC, ("hostname", name)),
        "local": ImageSpec(64 * MiB, "ffs", "none", "aes-xts", 256),
        "pkg": PkgSpec(256 * MiB, "ffs", PkgSource(None, ())),
        "swap": SwapSpec(128 * MiB, "aes-xts", 256),
    }
    values.update(changes)
    return DomU(**values)  # type: ignore[arg-type]


# --- valid sites -----------------------------------------------------------------------


FULL_SITE = """\
output: ../build
dom0: netbsd
templates: ../inputs/templates
locks: null
root:
  source:
    tree: ../inputs/root
    metalog: ../inputs/root.metalog
  kernel: ../inputs/netbsd-XEN3_DOMU
  size: 400m
  fs: ext2fs
  makedev:
    add: [xbd2, tun0]
    remove: [wscons, wd0]
defaults:
  memory: 512m
  vif: ["bridge=xenbr0", "bridge=xenbr1"]
  rc_conf:
    sshd: yes
    umask: 022
  local: {size: 128m}
  pkg:
    fs: ext2fs
    source: {packages: [../inputs/packages/bash-5.2.tgz, ../inputs/packages/vim-9.1.tbz]}
  swap: {cipher: aes-cbc}
domains:
  www1:
    memory: 1g
    rc_conf:
      ifconfig_xennet0: "inet 192.0.2.10 netmask 255.255.255.0"
      sshd: no
    local: {fs: ext2fs}
    swap: {keylength: 256}
  db1:
    vcpus: 4
    vif: ["bridge=xenbr2"]
    rc_conf: {hostname: db1.example.org, postgresql: yes}
    pkg:
      size: 1g
      source: {tree: ../inputs/pkgtree}
    swap: {size: 1g, cipher: adiantum}
  mail:
"""


def test_full_site_loads_into_the_exact_model(tmp_path: Path, inputs: Path) -> None:
    path = write_site(tmp_path, FULL_SITE)
    packages = (inputs / "packages/bash-5.2.tgz", inputs / "packages/vim-9.1.tbz")
    inherited_rc = (("sshd", "YES"), ("umask", "022"))
    assert load_site(path) == Site(
        path=path,
        output=tmp_path / "build",
        templates=inputs / "templates",
        locks=tmp_path / "build" / "locks",
        keys=path.parent / "keys",
        root=RootSpec(
            source=RootSource(
                tree=inputs / "root", metalog=inputs / "root.metalog", sets=(), image=None
            ),
            kernel=inputs / "netbsd-XEN3_DOMU",
            size=400 * MiB,
            fs="ext2fs",
            makedev_add=("xbd2", "tun0"),
            makedev_remove=("wscons", "wd0"),
            downloads=(),
        ),
        domus=(
            domu(
                "www1",
                memory=1024,
                vif=("bridge=xenbr0", "bridge=xenbr1"),
                rc_conf=(
                    *BUILTIN_RC,
                    ("hostname", "www1"),
                    ("sshd", "NO"),  # the entry's value, in the place defaults gave it
                    ("umask", "022"),
                    ("ifconfig_xennet0", "inet 192.0.2.10 netmask 255.255.255.0"),
                ),
                local=ImageSpec(128 * MiB, "ext2fs", "none", "aes-xts", 256),
                pkg=PkgSpec(256 * MiB, "ext2fs", PkgSource(None, packages)),
                swap=SwapSpec(128 * MiB, "aes-cbc", 256),
            ),
            domu(
                "db1",
                memory=512,
                vcpus=4,
                vif=("bridge=xenbr2",),
                rc_conf=(
                    *BUILTIN_RC,
                    ("hostname", "db1.example.org"),
                    *inherited_rc,
                    ("postgresql", "YES"),
                ),
                local=ImageSpec(128 * MiB, "ffs", "none", "aes-xts", 256),
                pkg=PkgSpec(GiB, "ext2fs", PkgSource(inputs / "pkgtree", ())),
                swap=SwapSpec(GiB, "adiantum", 256),
            ),
            domu(
                "mail",
                memory=512,
                vif=("bridge=xenbr0", "bridge=xenbr1"),
                rc_conf=(*BUILTIN_RC, ("hostname", "mail"), *inherited_rc),
                local=ImageSpec(128 * MiB, "ffs", "none", "aes-xts", 256),
                pkg=PkgSpec(256 * MiB, "ext2fs", PkgSource(None, packages)),
                swap=SwapSpec(128 * MiB, "aes-cbc", 128),
            ),
        ),
        blockdev=BlockdevSpec(backend="auto", units=4, wait=600),
        generations=GenerationsSpec(keep=3),
        converge=ConvergeSpec(keep_backups=5, keep_images=1, mount=False),
        dom0="netbsd",
    )


MINIMAL_SITE = """\
root:
  source: {sets: [../inputs/sets/base.tgz, ../inputs/sets/etc.tar.xz]}
  kernel: ../inputs/netbsd-XEN3_DOMU
  size: 1g
domains:
  www1:
"""


def test_minimal_site_takes_every_default(
    tmp_path: Path, inputs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(platform, "system", lambda: "NetBSD")
    path = write_site(tmp_path, MINIMAL_SITE)
    site = load_site(path)
    assert site.dom0 == "netbsd"
    assert site.output == tmp_path / "config" / "build"
    assert site.locks == tmp_path / "config" / "build" / "locks"
    assert site.templates is None
    assert site.root == RootSpec(
        source=RootSource(
            tree=None,
            metalog=None,
            sets=(inputs / "sets/base.tgz", inputs / "sets/etc.tar.xz"),
            image=None,
        ),
        kernel=inputs / "netbsd-XEN3_DOMU",
        size=GiB,
        fs="ffs",
        makedev_add=MAKEDEV_ADD,
        makedev_remove=MAKEDEV_REMOVE,
        downloads=(),
    )
    # NetBSD's vif-bridge adds the vif to the named bridge: there they are called bridgeN
    assert site.domus == (domu("www1", vif=("bridge=bridge0",)),)


@pytest.mark.parametrize(
    ("system", "written", "dom0", "vif"),
    [
        ("Linux", "", "linux", ("bridge=xenbr0",)),
        ("Linux", "dom0: netbsd\n", "netbsd", ("bridge=bridge0",)),
        ("NetBSD", "dom0: linux\n", "linux", ("bridge=xenbr0",)),
        ("FreeBSD", "dom0: netbsd\n", "netbsd", ("bridge=bridge0",)),
    ],
)
def test_dom0_defaults_to_this_host_and_picks_the_default_bridge(
    tmp_path: Path,
    inputs: Path,
    monkeypatch: pytest.MonkeyPatch,
    system: str,
    written: str,
    dom0: str,
    vif: tuple[str, ...],
) -> None:
    monkeypatch.setattr(platform, "system", lambda: system)
    site = load_site(write_site(tmp_path, written + MINIMAL_SITE))
    assert site.dom0 == dom0
    assert site.domus[0].vif == vif


def test_a_vif_written_or_emptied_is_kept_on_any_dom0(tmp_path: Path, inputs: Path) -> None:
    text = "dom0: netbsd\n" + MINIMAL_SITE.replace(
        "  www1:\n", "  www1: {vif: []}\n  db1: {vif: [bridge=xenbr0]}\n"
    )
    site = load_site(write_site(tmp_path, text))
    assert [d.vif for d in site.domus] == [(), ("bridge=xenbr0",)]


def test_dom0_must_be_set_on_a_host_that_is_no_dom0(
    tmp_path: Path, inputs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(platform, "system", lambda: "FreeBSD")
    path = write_site(tmp_path, MINIMAL_SITE)
    assert problems(path) == [
        f"{path}:1: dom0: required on FreeBSD, which is not a dom0 domus knows; "
        "set dom0: netbsd or dom0: linux (the system the domUs run on)"
    ]


def test_the_model_is_frozen_and_uses_tuples(tmp_path: Path, inputs: Path) -> None:
    site = load_site(write_site(tmp_path, FULL_SITE))
    with pytest.raises(dataclasses.FrozenInstanceError):
        site.output = Path("/elsewhere")  # type: ignore[misc]
    assert type(site.domus) is tuple
    assert type(site.domus[0].vif) is tuple
    assert type(site.domus[0].rc_conf) is tuple
    assert type(site.root.makedev_remove) is tuple
    assert all(path.is_absolute() for path in site.domus[0].pkg.source.packages)


def test_a_site_file_path_given_relative_is_made_absolute(
    tmp_path: Path, inputs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_site(tmp_path, ROOT + "domains: {www1: }\n")
    monkeypatch.chdir(tmp_path)
    site = load_site(Path("config/site.yaml"))
    assert site.path == tmp_path / "config" / "site.yaml"
    assert site.root.kernel == inputs / "netbsd-XEN3_DOMU"


def test_null_means_inherit_and_locks_can_be_set(tmp_path: Path, inputs: Path) -> None:
    path = write_site(
        tmp_path,
        "locks: /run/domus\n"
        + ROOT
        + dedent("""\
            defaults: {memory: 512m, vcpus: 2}
            domains:
              www1: {memory: null, vcpus: 3}
            """),
    )
    site = load_site(path)
    assert site.locks == Path("/run/domus")
    assert site.domus == (domu("www1", memory=512, vcpus=3),)


def test_memory_as_a_bare_number_counts_mib(tmp_path: Path, inputs: Path) -> None:
    path = write_site(tmp_path, ROOT + "domains:\n  a: {memory: 384}\n  b: {memory: '64'}\n")
    assert [d.memory for d in load_site(path).domus] == [384, 64]


def test_hostname_from_the_entry_replaces_the_default_in_its_place(
    tmp_path: Path, inputs: Path
) -> None:
    path = write_site(tmp_path, ROOT + "domains:\n  www1: {rc_conf: {a: 1, hostname: web}}\n")
    assert load_site(path).domus[0].rc_conf == (*BUILTIN_RC, ("hostname", "web"), ("a", "1"))


def test_rc_conf_values_become_strings_as_written(tmp_path: Path, inputs: Path) -> None:
    path = write_site(
        tmp_path,
        ROOT + "domains:\n  www1:\n    rc_conf: {a: on, b: false, c: 0755, d: 12, e: text}\n",
    )
    assert load_site(path).domus[0].rc_conf[-5:] == (
        ("a", "YES"),
        ("b", "NO"),
        ("c", "0755"),  # not YAML 1.1's octal 493
        ("d", "12"),
        ("e", "text"),
    )


def test_lists_are_replaced_not_merged(tmp_path: Path, inputs: Path) -> None:
    path = write_site(
        tmp_path,
        ROOT + "defaults: {vif: [bridge=a, bridge=b]}\ndomains:\n  www1: {vif: [bridge=c]}\n",
    )
    assert load_site(path).domus[0].vif == ("bridge=c",)


def test_pkg_source_is_taken_whole(tmp_path: Path, inputs: Path) -> None:
    path = write_site(
        tmp_path,
        ROOT
        + dedent("""\
            defaults:
              pkg:
                size: 512m
                source: {packages: [../inputs/packages/bash-5.2.tgz]}
            domains:
              tree: {pkg: {source: {tree: ../inputs/pkgtree}}}
              empty: {pkg: {source: null}}
              inherits: {pkg: {fs: ext2fs}}
            """),
    )
    bash = (inputs / "packages/bash-5.2.tgz",)
    assert [d.pkg for d in load_site(path).domus] == [
        PkgSpec(512 * MiB, "ffs", PkgSource(inputs / "pkgtree", ())),
        PkgSpec(512 * MiB, "ffs", PkgSource(None, ())),
        PkgSpec(512 * MiB, "ext2fs", PkgSource(None, bash)),
    ]


@pytest.mark.parametrize(
    ("cipher", "keylength"),
    [
        ("aes-xts", 256),
        ("aes-cbc", 128),
        ("3des-cbc", 192),
        ("blowfish-cbc", 128),
        ("adiantum", 256),
    ],
)
def test_keylength_defaults_by_cipher(
    tmp_path: Path, inputs: Path, cipher: str, keylength: int
) -> None:
    path = write_site(tmp_path, ROOT + f"domains:\n  www1: {{swap: {{cipher: {cipher}}}}}\n")
    assert load_site(path).domus[0].swap == SwapSpec(128 * MiB, cipher, keylength)


@pytest.mark.parametrize("keylength", [40, 48, 448])
def test_blowfish_takes_multiples_of_8(tmp_path: Path, inputs: Path, keylength: int) -> None:
    swap = f"{{cipher: blowfish-cbc, keylength: {keylength}}}"
    path = write_site(tmp_path, ROOT + f"domains:\n  www1: {{swap: {swap}}}\n")
    assert load_site(path).domus[0].swap.keylength == keylength


def test_default_remove_list_gives_way_to_added_devices(tmp_path: Path, inputs: Path) -> None:
    path = write_site(tmp_path, ROOT + "  makedev: {add: [wd0, xbd2]}\ndomains: {www1: }\n")
    root = load_site(path).root
    assert root.makedev_add == ("wd0", "xbd2")
    assert root.makedev_remove == MAKEDEV_REMOVE
    # The default patterns remove every wd disk but the one added back.
    makedev = compose_makedev(
        (NETBSD / "MAKEDEV.tmpl").read_text(), (NETBSD / "etc.amd64" / "MAKEDEV.conf").read_text()
    )
    patched = patch_init_target(makedev, root.makedev_add, root.makedev_remove)
    init = patched[patched.index("\ninit)\n") :]
    words = " ".join(init[: init.index(";;")].split()).split()
    assert "wd0" in words
    assert "wd1" not in words
    assert "nvme0ns1" not in words
    assert "xbd2" in words


def test_yaml_anchors_and_merge_keys_work(tmp_path: Path, inputs: Path) -> None:
    path = write_site(
        tmp_path,
        ROOT
        + dedent("""\
            domains:
              www1: &web
                vcpus: 2
                rc_conf: {httpd: yes}
              www2:
                <<: *web
                vcpus: 4
              www3: *web
            """),
    )
    www1, www2, www3 = load_site(path).domus
    assert (www1.vcpus, www2.vcpus, www3.vcpus) == (2, 4, 2)
    assert www2.rc_conf == (*BUILTIN_RC, ("hostname", "www2"), ("httpd", "YES"))


def test_plain_is_json_for_hashing(tmp_path: Path, inputs: Path) -> None:
    site = load_site(write_site(tmp_path, FULL_SITE))
    data = plain(site)
    assert json.loads(json.dumps(data)) == data
    assert data["output"] == str(tmp_path / "build")  # type: ignore[index]
    www1 = data["domus"][0]  # type: ignore[index]
    assert www1["rc_conf"][0] == ["rc_configured", "YES"]
    assert www1["swap"] == {"size": 128 * MiB, "cipher": "aes-cbc", "keylength": 256}
    assert plain(site.domus[2].pkg.source) == {
        "tree": None,
        "packages": [str(inputs / "packages/bash-5.2.tgz"), str(inputs / "packages/vim-9.1.tbz")],
    }


def test_plain_refuses_what_is_not_model_data() -> None:
    with pytest.raises(TypeError):
        plain({1, 2})


def test_a_hundred_domains_load(tmp_path: Path, inputs: Path) -> None:
    lines = [ROOT, "domains:\n"]
    lines += [f"  d{i}: {{memory: {64 + i}, rc_conf: {{x: {i}}}}}\n" for i in range(100)]
    site = load_site(write_site(tmp_path, "".join(lines)))
    assert [d.name for d in site.domus] == [f"d{i}" for i in range(100)]
    assert site.domus[99].memory == 163


# --- problems: each one line with file, line, key and what is expected -----------------


def test_problem_names_file_line_and_key_as_given(
    tmp_path: Path, inputs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_site(tmp_path, ROOT + "domains:\n  www1:\n    memory: lots\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_site(Path("config/site.yaml"))
    assert str(caught.value) == (
        "config/site.yaml:7: domains.www1.memory: expected a size such as 256m or 1g, got 'lots'"
    )
    assert caught.value.problems == [
        Problem(
            "config/site.yaml",
            7,
            "domains.www1.memory",
            "expected a size such as 256m or 1g, got 'lots'",
        )
    ]
    assert caught.value.status == 78  # ./domus exits 78: invalid site file


DOMAIN_PROBLEMS = [
    # sizes and numbers
    ("{memory: 16m}", "memory: expected at least 32m, got '16m'"),
    ("{memory: 16}", "memory: expected at least 32m, got 16"),
    ("{memory: 1000k}", "memory: expected a whole number of MiB such as 256m, got '1000k'"),
    ("{memory: [1g]}", "memory: expected a size such as 256m or 1g, got a list"),
    ("{memory: 1.5}", "memory: expected a size such as 256m or 1g, got 1.5"),
    (
        "{memory: 100000g}",
        "memory: expected at most 2047g, the most Xen supports for a PV domU, got '100000g'",
    ),
    ("{vcpus: 0}", "vcpus: expected an integer from 1 to 64, got 0"),
    ("{vcpus: 65}", "vcpus: expected an integer from 1 to 64, got 65"),
    ("{vcpus: '2'}", "vcpus: expected an integer from 1 to 64, got '2'"),
    ("{vcpus: yes}", "vcpus: expected an integer from 1 to 64, got yes"),
    ("{vcpus: !foo 2}", "vcpus: expected an integer from 1 to 64, got a value tagged !foo"),
    (
        "{local: {size: 1000}}",
        "local.size: expected a multiple of 512 bytes (a bare number counts bytes; "
        "write 400m for 400 MiB), got 1000",
    ),
    ("{local: {size: 0}}", "local.size: expected a size greater than 0, got 0"),
    ("{local: {density: 512}}", "local.density: expected a size from 1k to 64m, got 512"),
    ("{local: {density: 1t}}", "local.density: expected a size from 1k to 64m, got '1t'"),
    ("{swap: {size: 1gb}}", "swap.size: expected a size such as 256m or 1g, got '1gb'"),
    (
        "{pkg: {size: 99999999999999999999g}}",
        "pkg.size: expected a size of at most 16t, got '99999999999999999999g'",
    ),
    ("{swap: {size: 17t}}", "swap.size: expected a size of at most 16t, got '17t'"),
    (
        "{local: {size: 512}}",
        "local.size: expected at least 48k, the smallest ffs image (the default fs), got 512",
    ),
    (
        "{local: {size: 40k, fs: ext2fs}}",
        "local.size: expected at least 60k, the smallest "
        "ext2fs image (domains.www1.local.fs, line 6), got 40k",
    ),
    (
        "{local: {size: 16t, fs: ext2fs}}",
        "local.size: expected at most 17179869180k, the "
        "largest ext2fs image (domains.www1.local.fs, line 6), got 16t",
    ),
    (
        "{pkg: {size: 2t}}",
        "pkg.size: expected at most 2147483640k, the largest ffs image (the default fs), got 2t",
    ),
    (
        "{pkg: {size: 1001k}}",
        "pkg.size: expected a multiple of 8k, the ffs block size (the default fs), got 1001k",
    ),
    # choices
    ("{local: {fs: zfs}}", "local.fs: expected one of ffs, ext2fs, got 'zfs'"),
    (
        "{swap: {cipher: rot13}}",
        "swap.cipher: expected one of aes-xts, aes-cbc, 3des-cbc, blowfish-cbc, adiantum, "
        "got 'rot13'",
    ),
    (
        "{swap: {keylength: -1}}",
        "swap.keylength: expected a key length in bits such as 256, got -1",
    ),
    # types
    (
        "{vif: bridge=xenbr0}",
        "vif: expected a list of xl vif specs such as ['bridge=bridge0'], got 'bridge=xenbr0'",
    ),
    (
        """{vif: ['bridge=xenbr0', 'mac="x"']}""",
        "vif[1]: expected an xl vif spec such as 'bridge=bridge0', without quote characters "
        """or newlines, got 'mac="x"'""",
    ),
    (
        "{local: 64m}",
        "local: expected a mapping with the keys size, fs, density, encrypt, cipher, keylength, "
        "got '64m'",
    ),
    ("{swap: [1g]}", "swap: expected a mapping with the keys size, cipher, keylength, got a list"),
    ("{rc_conf: [sshd]}", "rc_conf: expected a mapping of rc.conf variable to value, got a list"),
    (
        "{rc_conf: {1st: x}}",
        "rc_conf.1st: expected an rc.conf variable name: letters, digits and '_', "
        "not starting with a digit",
    ),
    (
        "{rc_conf: {sshd-x: x}}",
        "rc_conf.sshd-x: expected an rc.conf variable name: letters, digits and '_', "
        "not starting with a digit",
    ),
    (
        "{rc_conf: {sshd: [yes]}}",
        "rc_conf.sshd: expected a string, an integer or yes/no, got a list",
    ),
    (
        "{rc_conf: {x: 1.5}}",
        "rc_conf.x: expected a string, an integer or yes/no (quote anything else), got 1.5",
    ),
    (
        "{rc_conf: {x: }}",
        "rc_conf.x: expected a string, an integer or yes/no (quote anything else), got null",
    ),
    ('{rc_conf: {motd: "a\\nb"}}', "rc_conf.motd: expected a value on one line, got 'a\\nb'"),
    # pkg.source
    (
        "{pkg: {source: {packages: []}}}",
        "pkg.source.packages: expected a list of at least one pkgsrc binary package file "
        "(use source: null for an empty image), got an empty list",
    ),
    (
        "{pkg: {source: {packages: [../inputs/packages/missing.tgz]}}}",
        "pkg.source.packages[0]: no such file: INPUTS/packages/missing.tgz",
    ),
    (
        "{pkg: {source: {packages: [../inputs/packages/bash.rpm]}}}",
        "pkg.source.packages[0]: expected a file name ending in .tgz, .tbz or .txz, "
        "got '../inputs/packages/bash.rpm'",
    ),
    (
        "{pkg: {source: {tree: ../inputs/nothing}}}",
        "pkg.source.tree: no such directory: INPUTS/nothing",
    ),
    (
        "{pkg: {source: {tree: ../inputs/netbsd-XEN3_DOMU}}}",
        "pkg.source.tree: expected a directory, but INPUTS/netbsd-XEN3_DOMU is not one",
    ),
    (
        "{pkg: {source: {tree: ../inputs/pkgtree, packages: [../inputs/packages/bash-5.2.tgz]}}}",
        "pkg.source: expected only one of 'tree' or 'packages' (or null for an empty image), "
        "got both",
    ),
    (
        "{pkg: {source: yes}}",
        "pkg.source: expected a mapping with one of the keys tree, packages "
        "(or null for an empty image), got yes",
    ),
    # unknown keys
    (
        "{memroy: 1g}",
        "memroy: unknown key; did you mean 'memory'? "
        "expected one of: memory, vcpus, vif, rc_conf, local, pkg, swap, host",
    ),
    (
        "{Memory: 1g}",
        "Memory: unknown key; did you mean 'memory'? "
        "expected one of: memory, vcpus, vif, rc_conf, local, pkg, swap, host",
    ),
    (
        "{swap: {ciper: aes-cbc}}",
        "swap.ciper: unknown key; did you mean 'cipher'? expected one of: size, cipher, keylength",
    ),
    (
        "{pkg: {source: {trees: x}}}",
        "pkg.source.trees: unknown key; did you mean 'tree'? expected one of: tree, packages",
    ),
    (
        "{colour: blue}",
        "colour: unknown key; expected one of: memory, vcpus, vif, rc_conf, local, pkg, swap, host",
    ),
    # key lengths checked where both are written
    (
        "{swap: {cipher: aes-xts, keylength: 128}}",
        "swap.keylength: expected 256 or 512 for cipher aes-xts, got 128",
    ),
    (
        "{swap: {keylength: 128}}",
        "swap.keylength: expected 256 or 512 for cipher aes-xts (the default cipher), got 128",
    ),
    (
        "{swap: {cipher: blowfish-cbc, keylength: 44}}",
        "swap.keylength: expected 40 to 448 in steps of 8 for cipher blowfish-cbc, got 44",
    ),
    (
        "{swap: {cipher: 3des-cbc, keylength: 256}}",
        "swap.keylength: expected 192 for cipher 3des-cbc, got 256",
    ),
]


@pytest.mark.parametrize(("entry", "expected"), DOMAIN_PROBLEMS)
def test_bad_domain_setting(tmp_path: Path, inputs: Path, entry: str, expected: str) -> None:
    path = write_site(tmp_path, ROOT + f"domains:\n  www1: {entry}\n")
    expected = expected.replace("INPUTS", str(inputs))
    assert problems(path) == [f"{path}:6: domains.www1.{expected}"]


@pytest.mark.parametrize(("entry", "expected"), DOMAIN_PROBLEMS[:6])
def test_bad_default_is_reported_once_at_defaults(
    tmp_path: Path, inputs: Path, entry: str, expected: str
) -> None:
    path = write_site(tmp_path, ROOT + f"defaults: {entry}\ndomains:\n  www1:\n  db1:\n")
    assert problems(path) == [f"{path}:5: defaults.{expected}"]


def test_merge_key_needs_a_mapping(tmp_path: Path, inputs: Path) -> None:
    path = write_site(tmp_path, ROOT + "domains:\n  www1: {<<: 5}\n")
    assert problems(path) == [f"{path}:6: domains.www1: expected a mapping to merge with <<, got 5"]


def test_problems_point_at_the_line_of_the_value(tmp_path: Path, inputs: Path) -> None:
    path = write_site(
        tmp_path,
        ROOT
        + dedent("""\
            domains:
              www1:
                vif:
                  - bridge=xenbr0
                  - "bridge=xenbr1,script='x'"
                rc_conf:
                  sshd: yes
                  ntpd:
                    - yes
            """),
    )
    assert problems(path) == [
        f"{path}:9: domains.www1.vif[1]: expected an xl vif spec such as 'bridge=bridge0', "
        """without quote characters or newlines, got "bridge=xenbr1,script='x'\"""",
        f"{path}:13: domains.www1.rc_conf.ntpd: "
        "expected a string, an integer or yes/no, got a list",
    ]


@pytest.mark.parametrize(
    "name", ["Www1", "web_1", "-web", "web-", "web.example", "a" * 64, "ünicode", "1 2"]
)
def test_domain_names_must_be_file_and_host_names(tmp_path: Path, inputs: Path, name: str) -> None:
    path = write_site(tmp_path, ROOT + f"domains:\n  ok-1:\n  '{name}':\n")
    assert problems(path) == [
        f"{path}:7: domains.{name}: expected a domain name usable as a file name and a host "
        "name: 1 to 63 lowercase letters, digits and '-', starting and ending with a letter "
        "or digit"
    ]


@pytest.mark.parametrize("name", ["a", "0", "web-1", "a" * 63, "123"])
def test_domain_names_that_are_fine(tmp_path: Path, inputs: Path, name: str) -> None:
    path = write_site(tmp_path, ROOT + f"domains:\n  {name}:\n")
    assert load_site(path).domus[0].name == name


def test_duplicate_domain_is_reported(tmp_path: Path, inputs: Path) -> None:
    path = write_site(tmp_path, ROOT + "domains:\n  www1: {vcpus: 1}\n  db1:\n  www1: {vcpus: 2}\n")
    assert problems(path) == [
        f"{path}:8: domains.www1: duplicate key; first set on line 6 "
        "(YAML would keep only the last)"
    ]


def test_domain_names_differing_only_in_case_are_reported(tmp_path: Path, inputs: Path) -> None:
    path = write_site(tmp_path, ROOT + "domains:\n  www1:\n  WWW1:\n")
    assert problems(path) == [
        f"{path}:7: domains.WWW1: expected a domain name usable as a file name and a host "
        "name: 1 to 63 lowercase letters, digits and '-', starting and ending with a letter "
        "or digit",
        f"{path}:7: domains.WWW1: differs from 'www1' (line 6) only in case; "
        "expected a name unique regardless of case",
    ]


def test_duplicate_keys_inside_an_entry_are_reported(tmp_path: Path, inputs: Path) -> None:
    path = write_site(
        tmp_path,
        ROOT
        + dedent("""\
            domains:
              www1:
                memory: 512m
                rc_conf:
                  sshd: yes
                  sshd: no
                memory: 1g
            """),
    )
    assert problems(path) == [
        f"{path}:10: domains.www1.rc_conf.sshd: duplicate key; first set on line 9 "
        "(YAML would keep only the last)",
        f"{path}:11: domains.www1.memory: duplicate key; first set on line 7 "
        "(YAML would keep only the last)",
    ]


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        (
            "domains:\n  www1: web\n",
            "6: domains.www1: expected a mapping of domain settings "
            "(or nothing, for all defaults), got 'web'",
        ),
        (
            "domains: [www1]\n",
            "5: domains: expected a mapping of domain name to domain "
            "settings, with at least one domain, got a list",
        ),
        (
            "domains: {}\n",
            "5: domains: expected a mapping of domain name to domain "
            "settings, with at least one domain, got an empty mapping",
        ),
        (
            "domains:\n",
            "1: domains: required, but not set; expected a mapping of domain name "
            "to domain settings, with at least one domain",
        ),
        (
            "defaults: web\ndomains: {www1: }\n",
            "5: defaults: expected a mapping of domain settings, got 'web'",
        ),
        (
            "defaults: {memroy: 1g}\ndomains: {www1: }\n",
            "5: defaults.memroy: unknown key; "
            "did you mean 'memory'? expected one of: memory, vcpus, vif, rc_conf, local, pkg, "
            "swap, host",
        ),
        (
            "outptu: x\ndomains: {www1: }\n",
            "5: outptu: unknown key; did you mean 'output'? "
            "expected one of: output, templates, keys, locks, dom0, generations, converge, "
            "blockdev, root, "
            "hosts, defaults, domains",
        ),
        (
            "templates: ../inputs/nothing\ndomains: {www1: }\n",
            "5: templates: no such directory: INPUTS/nothing",
        ),
        (
            "output: ../inputs/netbsd-XEN3_DOMU\ndomains: {www1: }\n",
            "5: output: expected a directory, but INPUTS/netbsd-XEN3_DOMU is not one",
        ),
        ("output: 12\ndomains: {www1: }\n", "5: output: expected the path of a directory, got 12"),
        (
            "dom0: freebsd\ndomains: {www1: }\n",
            "5: dom0: expected one of netbsd, linux, got 'freebsd'",
        ),
        (
            "output: ../a,b\ndomains: {www1: }\n",
            "5: output: expected a directory without a comma (xl ends a disk spec's "
            "script= at one, and block-domus-cgd its local.img), got '../a,b'",
        ),
    ],
)
def test_bad_site_setting(tmp_path: Path, inputs: Path, tail: str, expected: str) -> None:
    path = write_site(tmp_path, ROOT + tail)
    assert problems(path) == [f"{path}:" + expected.replace("INPUTS", str(inputs))]


ROOT_PROBLEMS = [
    (
        "root:\n  source: {tree: ../inputs/root}\n",
        [
            "1: root.kernel: required, but not set; expected the path of a file",
            "1: root.size: required, but not set; expected a size such as 256m or 1g",
        ],
    ),
    (
        "root:\n  kernel: ../inputs/netbsd-XEN3_DOMU\n  size: 1g\n",
        [
            "1: root.source: required, but not set; expected a mapping with one of the keys "
            "tree, sets, image (and metalog with tree)"
        ],
    ),
    (
        "output: x\n",
        [
            "1: root: required, but not set; expected a mapping with the keys source, kernel, "
            "size, fs, makedev"
        ],
    ),
    (
        "root: 400m\n",
        ["1: root: expected a mapping with the keys source, kernel, size, fs, makedev, got '400m'"],
    ),
    (
        "root:\n  source: {tree: ../inputs/root, sets: [../inputs/sets/base.tgz]}\n"
        "  kernel: ../inputs/netbsd-XEN3_DOMU\n  size: 1g\n",
        ["2: root.source: expected exactly one of 'tree', 'sets' or 'image', got tree and sets"],
    ),
    (
        "root:\n  source: {}\n  kernel: ../inputs/netbsd-XEN3_DOMU\n  size: 1g\n",
        [
            "2: root.source: expected exactly one of 'tree' (a directory), 'sets' "
            "(set tarballs) or 'image' (a root.img), got neither"
        ],
    ),
    (
        "root:\n  source:\n  kernel: ../inputs/netbsd-XEN3_DOMU\n  size: 1g\n",
        [
            "2: root.source: expected exactly one of 'tree' (a directory), 'sets' "
            "(set tarballs) or 'image' (a root.img), got neither"
        ],
    ),
    (
        "root:\n  source:\n    sets: [../inputs/sets/base.tgz]\n"
        "    metalog: ../inputs/root.metalog\n  kernel: ../inputs/netbsd-XEN3_DOMU\n  size: 1g\n",
        [
            "4: root.source.metalog: only allowed with 'tree'; set tarballs and images carry "
            "their own owners and modes"
        ],
    ),
    (
        "root:\n  source:\n    sets: []\n  kernel: ../inputs/netbsd-XEN3_DOMU\n  size: 1g\n",
        [
            "3: root.source.sets: expected a list of at least one NetBSD set tarball, "
            "got an empty list"
        ],
    ),
    (
        "root:\n  source:\n    sets:\n      - ../inputs/sets/base.tgz\n"
        "      - ../inputs/sets/comp.tgz\n      - ../inputs/sets/etc.zip\n"
        "  kernel: ../inputs/netbsd-XEN3_DOMU\n  size: 1g\n",
        [
            "5: root.source.sets[1]: no such file: INPUTS/sets/comp.tgz",
            "6: root.source.sets[2]: expected a file name ending in .tgz, .tar.gz or .tar.xz, "
            "got '../inputs/sets/etc.zip'",
        ],
    ),
    (
        "root:\n  source: {tree: ../inputs/nothing, metalog: ../inputs/no.metalog}\n"
        "  kernel: ../inputs/no-kernel\n  size: 1g\n",
        [
            "2: root.source.tree: no such directory: INPUTS/nothing",
            "2: root.source.metalog: no such file: INPUTS/no.metalog",
            "3: root.kernel: no such file: INPUTS/no-kernel",
        ],
    ),
    (
        "root:\n  source: {tree: ../inputs/root}\n  kernel: ../inputs/root\n  size: 1g\n",
        ["3: root.kernel: expected a file, but INPUTS/root is not a regular file"],
    ),
    (
        "root:\n  source: {tree: ../inputs/root}\n  kernel:\n  size: 1g\n  fs: zfs\n",
        [
            "1: root.kernel: required, but not set; expected the path of a file",
            "5: root.fs: expected one of ffs, ext2fs, got 'zfs'",
        ],
    ),
    (
        "root:\n  source: {tree: ../inputs/root}\n  kernel: ../inputs/netbsd-XEN3_DOMU\n"
        "  size: 1g\n  makedev:\n    add: [wd0, xbd2, sd0]\n    remove: [sd0, wd0, cd0]\n",
        [
            "6: root.makedev.add: expected devices not also in root.makedev.remove (line 7), "
            "got 'wd0', 'sd0'"
        ],
    ),
    (
        "root:\n  source: {tree: ../inputs/root}\n  kernel: ../inputs/netbsd-XEN3_DOMU\n"
        "  size: 1g\n  makedev:\n    add: [xbd2, 'a b']\n    remove: wd0\n",
        [
            "6: root.makedev.add[1]: expected a MAKEDEV device name (letters, digits and '_'), "
            "got 'a b'",
            "7: root.makedev.remove: expected a list of MAKEDEV device names or shell patterns, "
            "got 'wd0'",
        ],
    ),
]


@pytest.mark.parametrize(("head", "expected"), ROOT_PROBLEMS)
def test_bad_root(tmp_path: Path, inputs: Path, head: str, expected: list[str]) -> None:
    path = write_site(tmp_path, head + "domains: {www1: }\n")
    assert problems(path) == [f"{path}:" + e.replace("INPUTS", str(inputs)) for e in expected]


def test_keylength_checked_against_the_cipher_from_defaults(tmp_path: Path, inputs: Path) -> None:
    path = write_site(
        tmp_path,
        ROOT
        + dedent("""\
            defaults:
              swap:
                cipher: aes-cbc
            domains:
              www1:
                swap: {keylength: 512}
            """),
    )
    assert problems(path) == [
        f"{path}:10: domains.www1.swap.keylength: expected 128, 192 or 256 for cipher aes-cbc "
        "(from defaults.swap.cipher, line 7), got 512"
    ]


def test_inherited_keylength_is_reported_where_the_domain_changes_cipher(
    tmp_path: Path, inputs: Path
) -> None:
    path = write_site(
        tmp_path,
        ROOT
        + dedent("""\
            defaults:
              swap: {keylength: 512}
            domains:
              www1:
              db1:
                swap: {cipher: aes-cbc}
              mail:
                swap: {cipher: aes-cbc, keylength: 192}
            """),
    )
    assert problems(path) == [
        f"{path}:10: domains.db1.swap.cipher: keylength 512 inherited from "
        "defaults.swap.keylength (line 6) does not fit cipher aes-cbc: "
        "expected 128, 192 or 256; set domains.db1.swap.keylength"
    ]


def test_bad_keylength_in_defaults_is_reported_once(tmp_path: Path, inputs: Path) -> None:
    path = write_site(
        tmp_path,
        ROOT + "defaults:\n  swap: {keylength: 100}\ndomains:\n  www1:\n  db1:\n",
    )
    assert problems(path) == [
        f"{path}:6: defaults.swap.keylength: expected 256 or 512 for cipher aes-xts "
        "(the default cipher), got 100"
    ]


def test_bad_pkg_source_in_defaults_is_reported_once(tmp_path: Path, inputs: Path) -> None:
    path = write_site(
        tmp_path,
        ROOT
        + "defaults:\n  pkg:\n    source: {packages: [../inputs/x.tgz]}\n"
        + "domains:\n  www1:\n  db1:\n",
    )
    assert problems(path) == [
        f"{path}:7: defaults.pkg.source.packages[0]: no such file: {inputs}/x.tgz"
    ]


def test_several_problems_are_reported_together_in_file_order(tmp_path: Path, inputs: Path) -> None:
    path = write_site(
        tmp_path,
        dedent("""\
            root:
              source: {tree: ../inputs/nothing}
              kernel: ../inputs/netbsd-XEN3_DOMU
              size: lots
            domains:
              www1: {memroy: 1g, swap: {cipher: aes-cbc, keylength: 512}}
              www1: {}
              web_2:
            """),
    )
    assert problems(path) == [
        f"{path}:2: root.source.tree: no such directory: {inputs}/nothing",
        f"{path}:4: root.size: expected a size such as 256m or 1g, got 'lots'",
        f"{path}:6: domains.www1.memroy: unknown key; did you mean 'memory'? "
        "expected one of: memory, vcpus, vif, rc_conf, local, pkg, swap, host",
        f"{path}:6: domains.www1.swap.keylength: expected 128, 192 or 256 for cipher aes-cbc, "
        "got 512",
        f"{path}:7: domains.www1: duplicate key; first set on line 6 "
        "(YAML would keep only the last)",
        f"{path}:8: domains.web_2: expected a domain name usable as a file name and a host "
        "name: 1 to 63 lowercase letters, digits and '-', starting and ending with a letter "
        "or digit",
    ]


# --- the file itself -------------------------------------------------------------------


def test_missing_site_file(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    assert problems(path) == [f"{path}:0: no such file: {path}"]


def test_site_file_that_is_a_directory(tmp_path: Path) -> None:
    assert problems(tmp_path) == [
        f"{tmp_path}:0: expected a YAML file, but {tmp_path} is a directory"
    ]


@pytest.mark.parametrize("text", ["", "# nothing yet\n"])
def test_empty_site_file(tmp_path: Path, inputs: Path, text: str) -> None:
    path = write_site(tmp_path, text)
    assert problems(path) == [
        f"{path}:1: expected a mapping with the keys root and domains, the file is empty"
    ]


def test_site_file_that_is_not_a_mapping(tmp_path: Path, inputs: Path) -> None:
    path = write_site(tmp_path, "\n- root\n")
    assert problems(path) == [f"{path}:2: expected a mapping with the keys root and domains"]


LOADERS = [yaml.SafeLoader, getattr(yaml, "CSafeLoader", yaml.SafeLoader)]


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        (
            "domains:\n  www1: {}\n  db1\n  mail: {}\n",
            "8: invalid YAML: could not find expected ':' (while scanning a simple key on line 7)",
        ),
        (
            "domains:\n  www1: 'x\n",
            "7: invalid YAML: found unexpected end of stream "
            "(while scanning a quoted scalar on line 6)",
        ),
    ],
)
def test_yaml_syntax_error(
    tmp_path: Path,
    inputs: Path,
    monkeypatch: pytest.MonkeyPatch,
    loader: type,
    tail: str,
    expected: str,
) -> None:
    monkeypatch.setattr(load, "LOADER", loader)
    path = write_site(tmp_path, ROOT + tail)
    assert problems(path) == [f"{path}:{expected}"]


def test_two_documents_are_a_syntax_error(tmp_path: Path, inputs: Path) -> None:
    path = write_site(tmp_path, ROOT + "---\ndomains: {www1: }\n")
    assert problems(path) == [
        f"{path}:5: invalid YAML: but found another document "
        "(expected a single document in the stream on line 1)"
    ]


def test_control_character_is_a_syntax_error(tmp_path: Path, inputs: Path) -> None:
    path = write_site(tmp_path, ROOT + "domains:\n  www1: \x07\n")
    (line,) = problems(path)
    assert line.startswith(f"{path}:6: invalid YAML: ")


def test_site_file_that_is_not_utf8(tmp_path: Path, inputs: Path) -> None:
    path = tmp_path / "config" / "site.yaml"
    path.write_bytes(ROOT.encode() + b"domains:\n  caf\xe9:\n")
    assert problems(path) == [f"{path}:6: expected UTF-8 text, got the byte 0xe9"]


# --- the settings table and its reference ----------------------------------------------


def model_fields(model: type, prefix: str = "") -> set[str]:
    """The dotted names of every value a model object holds, such as root.source.tree."""
    names = set()
    hints = typing.get_type_hints(model)
    for field in dataclasses.fields(model):
        if dataclasses.is_dataclass(hints[field.name]):
            names |= model_fields(hints[field.name], f"{prefix}{field.name}.")
        else:
            names.add(prefix + field.name)
    return names


@pytest.mark.parametrize(
    ("table", "model", "not_settings"),
    [
        (SITE, Site, {"path", "root.downloads", "domus", "hosts"}),
        (DOMAIN, DomU, {"name"}),
    ],
    ids=["site", "domain"],
)
def test_each_model_field_is_one_setting_or_a_named_special_case(
    table: Table, model: type, not_settings: set[str]
) -> None:
    dests = [setting.dest for setting in table.settings.values() if setting.dest is not None]
    assert len(dests) == len(set(dests))
    assert set(dests) | not_settings == model_fields(model)
    assert not set(dests) & not_settings


def test_a_table_default_is_the_model_default(
    tmp_path: Path, inputs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for table, key, value in ((DOMAIN, "vcpus", 7), (SITE, "blockdev.units", 9)):
        changed = dataclasses.replace(table.settings[key], default=value)
        monkeypatch.setitem(table.settings, key, changed)
    site = load_site(write_site(tmp_path, ROOT + "domains: {www1: }\n"))
    assert (site.domus[0].vcpus, site.blockdev.units) == (7, 9)


def test_every_setting_sits_in_a_declared_group() -> None:
    for table in (SITE, DOMAIN):
        for entry in table.entries:
            parent = entry.key.rpartition(".")[0]
            assert parent == "" or parent in table.groups, entry.key


def test_table_defaults_are_consistent() -> None:
    assert not set(MAKEDEV_ADD) & set(MAKEDEV_REMOVE)
    assert len(set(MAKEDEV_REMOVE)) == len(MAKEDEV_REMOVE)
    for cipher in CIPHERS.values():
        assert cipher.default_keylength in cipher.keylengths
    assert DOMAIN.settings["swap.cipher"].default in CIPHERS


def test_reference_has_a_row_for_every_setting() -> None:
    text = reference_markdown()
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(rows) == len(SITE.entries) + len(HOST.entries) + len(DOMAIN.entries)
    for entry in SITE.entries:
        assert f"| `{entry.key}` |" in text
    for entry in DOMAIN.entries:
        assert f"| `domains.<name>.{entry.key}` |" in text
    assert "| `domains.<name>.memory` | size (bare number: MiB) | `256m` |" in text
    assert "| `root.fs` | `ffs` \\| `ext2fs` | `ffs` |" in text
    assert "| `root.kernel` | file or URL | required |" in text
    assert "| `domains.<name>.swap.keylength` | integer (bits) | `by cipher: aes-xts 256," in text


def test_reference_from_the_command_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tasks.site", "--reference"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout == reference_markdown()


def test_command_line_check(tmp_path: Path, inputs: Path) -> None:
    good = write_site(tmp_path, ROOT + "domains: {www1: }\n")
    result = subprocess.run(
        [sys.executable, "-m", "tasks.site", str(good)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0
    assert json.loads(result.stdout)["domus"][0]["name"] == "www1"
    good.write_text(ROOT + "domains: {www1: {vcpus: 0}}\n")
    result = subprocess.run(
        [sys.executable, "-m", "tasks.site", str(good)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 78
    assert result.stderr == (
        f"domus: {good}:5: domains.www1.vcpus: expected an integer from 1 to 64, got 0\n"
        "domus: nothing was built or changed.\n"
    )


# --- sets and kernel by URL, generations ------------------------------------------------

RELEASE = "https://cdn.netbsd.org/pub/NetBSD/NetBSD-10.1/amd64/binary"


def test_set_and_kernel_urls_become_downloads_into_the_cache(tmp_path: Path, inputs: Path) -> None:
    path = write_site(
        tmp_path,
        dedent(f"""\
        root:
          source:
            sets: [{RELEASE}/sets/base.tgz, ../inputs/sets/etc.tar.xz]
          kernel: {RELEASE}/kernel/netbsd-XEN3_DOMU.gz
          size: 1g
        domains: {{www1: }}
        """),
    )
    site = load_site(path)
    cache = tmp_path / "config" / "build" / "cache" / "downloads"
    assert site.root.source.sets == (cache / "base.tgz", inputs / "sets/etc.tar.xz")
    assert site.root.kernel == cache / "netbsd-XEN3_DOMU"
    base, kernel = site.root.downloads
    assert (base.url, base.sha512, base.path, base.gunzip) == (
        f"{RELEASE}/sets/base.tgz",
        f"{RELEASE}/sets/SHA512",
        cache / "base.tgz",
        False,
    )
    assert (kernel.sha512, kernel.path, kernel.gunzip) == (
        f"{RELEASE}/kernel/SHA512",
        cache / "netbsd-XEN3_DOMU",
        True,
    )
    assert site.generations.keep == 3


def test_sha512_file_for_the_sets_and_keep(tmp_path: Path, inputs: Path) -> None:
    path = write_site(
        tmp_path,
        dedent(f"""\
        generations: {{keep: 5}}
        root:
          source:
            sets: [{RELEASE}/sets/base.tgz]
            sha512: ../inputs/root.metalog
          kernel: ../inputs/netbsd-XEN3_DOMU
          size: 1g
        domains: {{www1: }}
        """),
    )
    site = load_site(path)
    assert site.root.downloads[0].sha512 == str(inputs / "root.metalog")
    assert site.generations.keep == 5


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (
            "    sets: [ftp://]\n",
            "3: root.source.sets[0]: expected a URL with a host name, got 'ftp://'",
        ),
        (
            "    sets: ['gopher://example.org/base.tgz']\n",
            "3: root.source.sets[0]: expected an http, https or ftp URL, got the scheme 'gopher'",
        ),
        (
            "    sets: ['https://example.org/base.zip']\n",
            "3: root.source.sets[0]: expected a URL of a file ending in .tgz, .tar.gz or .tar.xz, "
            "got 'https://example.org/base.zip'",
        ),
        (
            "    sets: ['https://example.org/a/base.tgz', 'https://example.org/b/base.tgz']\n",
            "3: root.source.sets: expected each download under a name of its own, but base.tgz "
            "would be kept twice in the download cache",
        ),
        (
            "    sets: [../inputs/sets/base.tgz]\n    sha512: https://example.org/SHA512\n",
            "4: root.source.sha512: only used with set URLs, but the sets are all files",
        ),
    ],
)
def test_bad_downloads(tmp_path: Path, inputs: Path, lines: str, expected: str) -> None:
    path = write_site(
        tmp_path,
        "root:\n  source:\n"
        + lines
        + "  kernel: ../inputs/netbsd-XEN3_DOMU\n  size: 1g\ndomains: {www1: }\n",
    )
    assert problems(path) == [f"{path}:{expected}"]


def test_bad_kernel_url_and_keep(tmp_path: Path, inputs: Path) -> None:
    path = write_site(
        tmp_path,
        dedent("""\
        generations: {keep: 0}
        root:
          source: {tree: ../inputs/root}
          kernel: https:///netbsd
          size: 1g
        domains: {www1: }
        """),
    )
    assert problems(path) == [
        f"{path}:1: generations.keep: expected an integer from 1 to 1000, got 0",
        f"{path}:4: root.kernel: expected a URL with a host name, got 'https:///netbsd'",
    ]


# --- blockdev and root.source.image ------------------------------------------------------


def test_blockdev_defaults_and_settings(tmp_path: Path, inputs: Path) -> None:
    site = load_site(write_site(tmp_path, ROOT + "domains: {www1: }\n"))
    assert site.blockdev == BlockdevSpec(backend="auto", units=4, wait=600)
    path = write_site(
        tmp_path, ROOT + "blockdev: {backend: vnd, units: 8, wait: 30}\ndomains: {www1: }\n"
    )
    assert load_site(path).blockdev == BlockdevSpec(backend="vnd", units=8, wait=30)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "blockdev: {backend: vnode}\n",
            "5: blockdev.backend: expected one of auto, vnd, loop, none, got 'vnode'",
        ),
        ("blockdev: {units: 0}\n", "5: blockdev.units: expected an integer from 1 to 64, got 0"),
        ("blockdev: {wait: -1}\n", "5: blockdev.wait: expected an integer from 0 to 86400, got -1"),
        (
            "blockdev: {unit: 2}\n",
            "5: blockdev.unit: unknown key; did you mean 'units'? expected one of: backend, "
            "units, wait",
        ),
    ],
)
def test_bad_blockdev(tmp_path: Path, inputs: Path, line: str, expected: str) -> None:
    path = write_site(tmp_path, ROOT + line + "domains: {www1: }\n")
    assert problems(path) == [f"{path}:{expected}"]


def test_root_source_image(tmp_path: Path, inputs: Path) -> None:
    (inputs / "root.img").write_bytes(b"x")
    path = write_site(
        tmp_path,
        "root:\n  source: {image: ../inputs/root.img}\n"
        "  kernel: ../inputs/netbsd-XEN3_DOMU\n  size: 1g\ndomains: {www1: }\n",
    )
    assert load_site(path).root.source == RootSource(None, None, (), image=inputs / "root.img")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "{image: ../inputs/root.img, tree: ../inputs/root}",
            "2: root.source: expected exactly one of 'tree', 'sets' or 'image', got tree and image",
        ),
        (
            "{image: ../inputs/root.img, metalog: ../inputs/root.metalog}",
            "2: root.source.metalog: only allowed with 'tree'; set tarballs and images carry "
            "their own owners and modes",
        ),
        (
            "{image: ../inputs/nothing.img}",
            "2: root.source.image: no such file: INPUTS/nothing.img",
        ),
    ],
)
def test_bad_root_source_image(tmp_path: Path, inputs: Path, source: str, expected: str) -> None:
    (inputs / "root.img").write_bytes(b"x")
    path = write_site(
        tmp_path,
        f"root:\n  source: {source}\n"
        "  kernel: ../inputs/netbsd-XEN3_DOMU\n  size: 1g\ndomains: {www1: }\n",
    )
    assert problems(path) == [f"{path}:" + expected.replace("INPUTS", str(inputs))]


def test_the_model_says_who_opens_each_encrypted_local_img(tmp_path, inputs):
    plain, itself, dom0 = (
        domu(name, local=ImageSpec(64 * MiB, "ffs", encrypt, "aes-xts", 256))
        for name, encrypt in (("p", "none"), ("d", "domu"), ("z", "dom0"))
    )
    site = dataclasses.replace(
        load_site(write_site(tmp_path, MINIMAL_SITE)), domus=(plain, itself, dom0)
    )
    assert [
        (d.local_encrypted, d.opens_local_itself, d.local_opened_by_dom0) for d in site.domus
    ] == [
        (False, False, False),
        (True, True, False),
        (True, False, True),
    ]
    assert (site.passphrase_domus, site.dom0_cgd_domus) == ((itself,), (dom0,))


def test_a_domain_named_as_a_directory_of_the_output_images_is_refused(
    tmp_path: Path, inputs: Path
) -> None:
    (inputs / "netbsd").write_bytes(b"kernel")
    text = ROOT.replace("netbsd-XEN3_DOMU", "netbsd")
    path = write_site(tmp_path, text + "domains:\n  www1: {}\n  generations: {}\n  netbsd: {}\n")
    found = problems(path)
    assert (
        f"{path}:7: domains.generations: reserved: images/generations of the output holds "
        in (found[0])
    )
    assert (
        f"{path}:8: domains.netbsd: reserved: images/netbsd of the output holds the kernel"
        in (found[1])
    )
