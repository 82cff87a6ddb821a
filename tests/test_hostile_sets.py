"""Sets from a mirror are hostile input: a member beneath a symbolic link, at an absolute
path, through '..', or a hard link to anything but a regular file the sets made before it
is refused with one line naming the set and the member, and nothing is written outside
the output directory, whether the set is a local file or downloaded with its SHA512."""

from __future__ import annotations

import io
import lzma
import os
import tarfile
from pathlib import Path

import pytest

from tasks.images.tree import Tree
from tasks.pkgsrc.install import install_packages
from tasks.run.errors import DomusError
from tests.pkgsrc_fixture import Symlink, make_package
from tests.release_server import SETS, Release, serving, sha512_listing
from tests.sites import Site
from tests.test_cli import domus

UP = "../" * 40  # more than any temporary directory is deep


def crafted(members: list[tarfile.TarInfo | tuple[str, bytes]], compression: str = "gz") -> bytes:
    """A set of these members: TarInfo headers as they are, (name, data) regular files."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=f"w:{compression}") as tar:
        top = tarfile.TarInfo(".")
        top.type, top.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(top)
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
            else:
                info = tarfile.TarInfo(member[0])
                info.size, info.mode = len(member[1]), 0o644
                tar.addfile(info, io.BytesIO(member[1]))
    return buffer.getvalue()


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, target, 0o755
    return info


def cases(host: Path, secret: Path) -> dict[str, tuple[list, str, str]]:
    """name -> (members, the member refused, what the refusal says)."""
    inside = str(host)[1:]
    return {
        "beneath a symlink": (
            [link("./x", str(host)), ("./x/owned", b"owned\n")],
            "./x/owned",
            "lies beneath the symbolic link ./x",
        ),
        "beneath a symlink, a directory": (
            [link("./x", str(host)), link("./x/d", "", tarfile.DIRTYPE)],
            "./x/d",
            "lies beneath the symbolic link ./x",
        ),
        "a symlink over a directory": (
            [link("./d", "", tarfile.DIRTYPE), ("./d/f", b"f\n"), link("./d", str(host))],
            "./d",
            "would replace the directory ./d",
        ),
        "absolute": ([(f"{host}/owned", b"owned\n")], f"{host}/owned", "is an absolute path"),
        "dot-dot": (
            [(f"./{UP}{inside}/owned", b"owned\n")],
            f"./{UP}{inside}/owned",
            "leaves the tree",
        ),
        "hard link out": (
            [link("./h", f"{UP}{str(secret)[1:]}", tarfile.LNKTYPE)],
            "./h",
            "leaves the tree",
        ),
        "hard link absolute": (
            [link("./h", str(secret), tarfile.LNKTYPE)],
            "./h",
            "is an absolute path",
        ),
        "hard link to a symlink": (
            [link("./l", str(secret)), link("./h", "./l", tarfile.LNKTYPE)],
            "./h",
            "is a hard link to './l', which is no regular file",
        ),
    }


@pytest.fixture
def host(tmp_path) -> tuple[Path, Path]:
    """A host directory that must stay empty, and a host file nothing may link to."""
    (tmp_path / "host").mkdir()
    secret = tmp_path / "secret"
    secret.write_text("hunter2\n")
    return tmp_path / "host", secret


def assert_refused(done, site: Site, archive: str, member: str, says: str, host, secret):
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "Traceback" not in out and "a bug in domus" not in out
    lines = [line for line in out.splitlines() if f"member {member!r}" in line]
    assert len(lines) == 1, out
    assert archive in lines[0] and says in lines[0], out
    assert os.listdir(host) == []
    assert secret.stat().st_nlink == 1
    assert not list(site.output.rglob("root.img"))


@pytest.mark.parametrize("case", list(cases(Path("/h"), Path("/s"))))
def test_a_hostile_local_set_is_refused_and_writes_nothing_outside(tmp_path, host, case):
    members, member, says = cases(*host)[case]
    archive = tmp_path / "base.tgz"
    archive.write_bytes(crafted(members))
    site = Site(tmp_path / "site")
    site.data["root"]["source"] = {"sets": [str(archive)]}
    site.save()
    done = domus("build", f"config={site.path}", cwd=tmp_path)
    assert_refused(done, site, str(archive), member, says, *host)


def test_a_hostile_xz_set_is_refused_too(tmp_path, host):
    members, member, says = cases(*host)["beneath a symlink"]
    archive = tmp_path / "base.tar.xz"
    archive.write_bytes(crafted(members, "xz"))
    assert lzma.decompress(archive.read_bytes())  # really xz
    site = Site(tmp_path / "site")
    site.data["root"]["source"] = {"sets": [str(archive)]}
    site.save()
    done = domus("build", f"config={site.path}", cwd=tmp_path)
    assert_refused(done, site, str(archive), member, says, *host)


@pytest.mark.parametrize("case", ["beneath a symlink", "hard link to a symlink"])
def test_a_hostile_set_from_a_mirror_with_its_sha512_is_refused(tmp_path, host, case):
    members, member, says = cases(*host)[case]
    release = Release()
    release.files[SETS + "base.tgz"] = crafted(members)
    release.files[SETS + "SHA512"] = sha512_listing(
        {name: release.files[SETS + name] for name in ("base.tgz", "etc.tgz")}
    )
    with serving(release) as url:
        site = Site(tmp_path / "site")
        site.data["root"]["source"] = {"sets": [f"{url}{SETS}base.tgz", f"{url}{SETS}etc.tgz"]}
        site.save()
        done = domus("build", f"config={site.path}", cwd=tmp_path)
    assert_refused(done, site, "base.tgz", member, says, *host)


def test_a_package_member_beneath_its_own_symlink_is_refused(tmp_path, host):
    """pkgsrc packages go through the staged tree, which refuses the same."""
    package = tmp_path / "evil-1.0.tgz"
    make_package(package, "evil-1.0", {"lib": Symlink(str(host[0])), "lib/owned": b"owned\n"})
    tree = Tree.empty(tmp_path / "stage")
    with pytest.raises(DomusError, match=r"cannot create /lib/owned: /lib is not a directory"):
        install_packages(tree, [package], tmp_path / "cache")
    assert os.listdir(host[0]) == []
