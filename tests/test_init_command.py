"""`./domus init DIR --release R`: a starter site that validates and builds as written."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from tasks.site import load_site
from tests.conftest import REPO
from tests.image_reader import ImageReader
from tests.netbsd_rules import assert_netbsd_accepts
from tests.release_server import KERNELS, SETS, Release, serving
from tests.test_cli import domus


@pytest.fixture
def mirror():
    release = Release()
    with serving(release) as url:
        yield url, release


def test_init_writes_a_site_that_validates_and_builds(tmp_path, mirror):
    url, release = mirror
    directory = tmp_path / "new" / "site"
    done = domus("init", "new/site", "--release", "10.1", "--mirror", url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"next: ./domus build config={directory / 'site.yaml'}\n"
    assert sorted(p.name for p in directory.iterdir()) == ["keys", "site.yaml", "templates"]
    assert stat.S_IMODE((directory / "keys").stat().st_mode) == 0o700
    assert list((directory / "keys").iterdir()) == []
    readme = (directory / "templates" / "README.md").read_text()
    copy = next(line.split() for line in readme.splitlines() if line.strip().startswith("cp "))
    assert Path(copy[1]).is_file() and copy[2] == "xen/domu.cfg"  # the built-in template
    assert "./domus render example xen/domu.cfg" in readme
    # both files name the page of domus's docs that says more, and it is there
    templates, reference = REPO / "docs" / "templates.md", REPO / "docs" / "site.md"
    assert f"{templates}." in readme
    assert f"# the Reference in {reference}\n" in (directory / "site.yaml").read_text()
    assert templates.is_file() and reference.is_file()

    data = yaml.safe_load((directory / "site.yaml").read_text())
    assert data["root"]["source"] == {
        "sets": [f"{url}{SETS}base.tgz", f"{url}{SETS}etc.tgz"],
        "sha512": f"{url}{SETS}SHA512",
    }
    assert data["root"]["kernel"] == f"{url}{KERNELS}netbsd-XEN3_DOMU.gz"
    site = load_site(directory / "site.yaml")
    assert [d.name for d in site.domus] == ["example"]

    built = domus("build", f"config={directory / 'site.yaml'}", cwd=tmp_path)
    assert built.returncode == 0, built.stdout + built.stderr
    images = directory / "build" / "images"
    assert_netbsd_accepts(images / "root.img", "ffs")
    assert ImageReader(images / "root.img", "ffs").read("netbsd-XEN3_DOMU") == release.kernel
    assert_netbsd_accepts(images / "example" / "local.img", "ffs")
    assert (directory / "build" / "xen" / "example.cfg").is_file()


def test_the_set_names_are_the_ones_the_release_lists(tmp_path, mirror):
    url, release = mirror
    for name in ("base", "etc"):  # NetBSD 10 ships amd64 sets as .tar.xz
        release.files[f"{SETS}{name}.tar.xz"] = release.files.pop(f"{SETS}{name}.tgz")
    release.files[SETS + "SHA512"] = release.files[SETS + "SHA512"].replace(b".tgz", b".tar.xz")
    done = domus("init", "site", "--release", "10.1", "--mirror", url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    data = yaml.safe_load((tmp_path / "site" / "site.yaml").read_text())
    assert data["root"]["source"]["sets"] == [f"{url}{SETS}base.tar.xz", f"{url}{SETS}etc.tar.xz"]


def test_a_directory_that_holds_anything_is_refused(tmp_path, mirror):
    url, _ = mirror
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "notes.txt").write_text("mine\n")
    done = domus("init", "site", "--release", "10.1", "--mirror", url, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith(f"domus: {tmp_path / 'site'} is not an empty directory")
    assert [p.name for p in (tmp_path / "site").iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]  # no partial left


def test_an_empty_directory_is_filled(tmp_path, mirror):
    url, _ = mirror
    (tmp_path / "site").mkdir()
    done = domus("init", "site", "--release", "10.1", "--mirror", url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "site" / "site.yaml").is_file()


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["--release", "9.4"], 1, "NetBSD-9.4/amd64/binary/sets/SHA512: the server answered 404"),
        (["--release", "ten"], 2, "--release 'ten' is not a NetBSD release"),
        (["--release", "10.1", "--arch", "sparc64"], 2, "argument --arch: invalid choice"),
    ],
)
def test_what_the_mirror_lacks_or_the_line_gets_wrong_writes_nothing(
    tmp_path, mirror, args, status, message
):
    url, _ = mirror
    done = domus("init", "site", *args, "--mirror", url, cwd=tmp_path)
    assert done.returncode == status
    assert message in done.stderr.splitlines()[0]
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []
