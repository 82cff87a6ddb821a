"""`./domus check` on the example site: silent and 0 when NetBSD would accept everything,
1 naming the problem when it would not, 78 for an invalid site."""

from __future__ import annotations

import io
import subprocess

import pytest

from tasks.cgd.params import format as format_params
from tasks.cgd.params import generate
from tasks.checks import Finding
from tasks.checks.run import report
from tests.sites import REPO, Run, Site


def check(site: Site, *args: str) -> Run:
    done = subprocess.run(
        [str(REPO / "domus"), "check", *args, f"config={site.path}"],
        capture_output=True,
        text=True,
    )
    return Run(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def site(tmp_path) -> Site:
    site = Site(tmp_path / "site")
    # the dom0 opens www1's local.img with cgd, which only a NetBSD dom0 can
    site.data["dom0"] = "netbsd"
    site.data["domains"]["www1"]["local"] = {"encrypt": "dom0"}
    site.save()
    site.build()
    return site


def test_dom0_encryption_for_a_linux_dom0_is_reported(site):
    site.data["dom0"] = "linux"
    site.save()
    run = check(site)
    assert run.returncode == 1
    assert run.stdout.startswith("dom0: local.encrypt: dom0 needs a NetBSD dom0: www1 has")


def test_a_sound_site_passes_silently(site):
    run = check(site)
    assert (run.returncode, run.stdout) == (0, ""), run.stdout + run.stderr
    leftovers = [
        p for p in site.output.rglob("*") if ".domus-check-" in p.name or "plain" in p.name
    ]
    assert leftovers == []  # the decrypted copy of www1's local.img is gone


def test_a_corrupted_image_fails_and_is_named(site):
    image = site.image("www2", "pkg.img")
    with open(image, "r+b") as f:  # pkg.img is a link to its generation: that is checked
        f.seek(8192 + 1372)
        f.write(b"\0\0\0\0")
    run = check(site)
    assert run.returncode == 1
    assert (
        run.stdout
        == (
            "www2/pkg.img: ffs superblock and cylinder groups: BAD SUPER BLOCK: CAN'T FIND "
            "SUPERBLOCK\n"
        )
        or "www2/pkg.img: file system: holds no ffs or ext2fs file system" in run.stdout
    )


def test_an_ext2fs_image_a_linux_mount_left_is_named_with_the_field(site):
    image = site.image("db1", "local.img")
    with open(image, "r+b") as f:
        f.seek(1024 + 136)
        f.write(b"/mnt\0")
    run = check(site, "db1")
    assert run.returncode == 1
    assert (
        "db1/local.img: ext2fs superblock (fsck_ext2fs readsb): BAD SUPER BLOCK: VALUES IN "
        "SUPER BLOCK DISAGREE WITH THOSE IN FIRST ALTERNATE: bytes 136-139 (s_last_mounted)"
        in run.stdout
    )
    assert "www1" not in run.stdout + run.stderr  # only the domU named


def test_a_missing_kernel_fails_each_xl_config(site):
    kernel = site.image("netbsd-XEN3_DOMU")
    kernel.unlink()
    run = check(site)
    assert run.returncode == 1
    for name in ("www1", "www2", "db1"):
        assert f"xen/{name}.cfg: kernel exists: {kernel} does not exist\n" in run.stdout


def test_an_encrypted_image_with_the_wrong_key_fails(site):
    params = site.directory / "keys" / "www1-local.params"
    params.write_text(format_params(generate("aes-xts", 256)))
    params.chmod(0o600)
    run = check(site, "www1")
    assert run.returncode == 1
    assert run.stdout == (
        f"www1/local.img: opens with its key: does not decrypt to ffs with {params}: a wrong "
        "key, or not the image the key was made for\n"
    )
    assert not [p for p in site.output.rglob("*") if ".domus-check-" in p.name]


def test_an_invalid_site_exits_78_and_an_unknown_name_2(site):
    assert check(site, "nosuch").returncode == 2
    site.path.write_text("domains: [\n")
    run = check(site)
    assert run.returncode == 78
    assert str(site.path) in run.stderr


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_table_and_cron_one_line_a_failure():
    findings = [
        Finding("root.img", "ffs superblock", None),
        Finding("xen/a.cfg", "kernel exists", "/k does not exist"),
    ]
    terminal, cron = Terminal(), io.StringIO()
    assert report(findings, terminal) == report(findings, cron) == 1
    assert terminal.getvalue() == (
        "subject    check           result\n"
        "root.img   ffs superblock  ok\n"
        "xen/a.cfg  kernel exists   FAILED: /k does not exist\n"
        "2 checks, 1 failed\n"
    )
    assert cron.getvalue() == "xen/a.cfg: kernel exists: /k does not exist\n"
