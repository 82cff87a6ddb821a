"""Sets and kernel by URL: downloaded once into the cache, checked against the release's
SHA512 files, rebuilt from only when a checksum changes, and refused when bad."""

from __future__ import annotations

import pytest

from tasks.sources.fetch import parse_listing
from tests.commands import active, generations, nightly
from tests.image_reader import ImageReader
from tests.release_server import KERNELS, SETS, Release, serving
from tests.sites import Site


@pytest.fixture
def release() -> Release:
    return Release()


@pytest.fixture
def url(release):
    with serving(release) as base:
        yield base


@pytest.fixture
def site(tmp_path, url) -> Site:
    site = Site(tmp_path / "site")
    site.data["root"]["source"] = {"sets": [f"{url}{SETS}base.tgz", f"{url}{SETS}etc.tgz"]}
    site.data["root"]["kernel"] = f"{url}{KERNELS}netbsd-XEN3_DOMU.gz"
    site.save()
    return site


def cache(site: Site, name: str):
    return site.output / "cache" / "downloads" / name


def test_sets_and_gzipped_kernel_are_downloaded_checked_and_built_from(site, release):
    run = site.build()
    assert {"fetch:base.tgz", "fetch:etc.tgz", "fetch:netbsd-XEN3_DOMU", "root"} <= run.ran
    assert cache(site, "netbsd-XEN3_DOMU").read_bytes() == release.kernel
    assert site.image("netbsd-XEN3_DOMU").read_bytes() == release.kernel
    root = ImageReader(site.image("root.img"), "ffs")
    assert root.text("etc/motd") == "release 1\n"
    assert root.read("netbsd-XEN3_DOMU") == release.kernel
    assert not list(cache(site, "").glob(".*"))  # no temporary file left behind


def test_an_unchanged_release_is_not_downloaded_again(site, release):
    site.build()
    release.requests.clear()
    run = site.build()
    assert run.ran == set()
    assert run.up_to_date == 3 + 1 + 4 * 3  # the three downloads, root, 4 tasks a domU
    assert release.fetched("base.tgz") == release.fetched("netbsd-XEN3_DOMU.gz") == 0
    assert release.fetched("SHA512") >= 2  # only the checksums were asked for
    assert nightly(site).stdout == ""


def test_another_mirror_with_the_same_release_rebuilds_nothing(site, release, url):
    site.build()
    with serving(release) as mirror:
        site.data["root"]["source"]["sets"] = [
            item.replace(url, mirror) for item in site.data["root"]["source"]["sets"]
        ]
        site.data["root"]["kernel"] = site.data["root"]["kernel"].replace(url, mirror)
        site.save()
        release.requests.clear()
        run = site.build()
    assert run.ran == set()
    assert release.fetched("base.tgz") == release.fetched("etc.tgz") == 0


def test_a_changed_checksum_downloads_that_set_and_rebuilds_root(site, release):
    site.build()
    first = active(site)
    release.publish_sets(motd=b"release 2\n")
    release.requests.clear()
    run = nightly(site)
    assert run.returncode == 0, run.stderr
    assert "downloaded: etc.tgz" in run.stdout
    assert "changed: file set etc.tgz" in run.stdout
    assert release.fetched("etc.tgz") == 1 and release.fetched("base.tgz") == 0
    assert active(site) != first
    assert ImageReader(site.image("root.img"), "ffs").text("etc/motd") == "release 2\n"


@pytest.mark.parametrize(
    ("misbehave", "message"),
    [
        ("corrupt", "the download does not match its SHA512 in"),
        ("drop", "the download was interrupted after"),
    ],
)
def test_a_bad_download_is_refused_and_nothing_is_activated(site, release, misbehave, message):
    site.build()
    first = active(site)
    kept = cache(site, "etc.tgz").read_bytes()
    release.publish_sets(motd=b"release 2\n")
    getattr(release, misbehave).add(SETS + "etc.tgz")
    run = nightly(site)
    assert run.returncode != 0
    assert "failed: fetch:etc.tgz" in run.stderr
    assert message in run.stderr
    assert "the cached copy and the images are unchanged" in run.stderr
    assert active(site) == first
    assert generations(site, "root") == {first}
    assert cache(site, "etc.tgz").read_bytes() == kept
    assert not list(cache(site, "").glob(".*"))
    assert ImageReader(site.image("root.img"), "ffs").text("etc/motd") == "release 1\n"
    getattr(release, misbehave).clear()  # the mirror is fixed: the next run catches up
    run = nightly(site)
    assert run.returncode == 0, run.stderr
    assert ImageReader(site.image("root.img"), "ffs").text("etc/motd") == "release 2\n"


def test_a_first_build_with_a_bad_download_builds_no_root(site, release):
    release.drop.add(KERNELS + "netbsd-XEN3_DOMU.gz")
    run = site.doit()
    assert run.returncode != 0
    assert "netbsd-XEN3_DOMU.gz: the download was interrupted after" in run.stdout
    assert "root" not in run.ran
    assert not site.image("root.img").exists()
    assert not cache(site, "netbsd-XEN3_DOMU").exists()


def test_a_sha512_file_that_does_not_list_the_file(site, release):
    release.files[SETS + "SHA512"] = b"SHA512 (comp.tgz) = " + b"0" * 128 + b"\n"
    run = site.doit()
    assert run.returncode != 0
    assert f"{SETS}SHA512 lists no base.tgz" in run.stdout


def test_sha512_listings_in_bsd_and_gnu_form():
    digest = "ab" * 64
    text = f"SHA512 (base.tgz) = {digest}\n{digest.upper()}  etc.tgz\n{digest} *comp.tgz\njunk\n"
    assert parse_listing(text) == {"base.tgz": digest, "etc.tgz": digest, "comp.tgz": digest}
