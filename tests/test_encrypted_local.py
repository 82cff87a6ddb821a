"""Encrypted local images: sealed with cgd at build time, opened by the dom0 or the domU."""

from __future__ import annotations

import base64
import os
import stat
import subprocess

import pytest

from tasks.cgd.params import format, generate, parse
from tasks.cgd.stream import decrypt_file, encrypt_file
from tasks.formats.superblocks import has_ffs_superblock
from tasks.run.errors import DomusError
from tests.image_reader import ImageReader
from tests.netbsd_rules import assert_netbsd_accepts
from tests.sites import Site


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Site:
    site = Site(tmp_path_factory.mktemp("sealed"))
    site.data["domains"]["www1"]["local"] = {"encrypt": "dom0"}
    site.data["domains"]["www2"]["local"] = {
        "encrypt": "domu",
        "cipher": "aes-cbc",
        "keylength": 256,
    }
    site.save()
    site.build()
    return site


def keys(site: Site):
    return site.directory / "keys"


def opened(site: Site, name: str, tmp_path, passphrase: bytes | None = None) -> ImageReader:
    params = parse((keys(site) / f"{name}-local.params").read_text())
    plain = tmp_path / f"{name}.plain"
    decrypt_file(params, site.image(name, "local.img"), plain, passphrase=passphrase)
    return ImageReader(plain, "ffs")


def test_keys_are_made_private_in_the_key_directory(site):
    assert stat.S_IMODE(keys(site).stat().st_mode) == 0o700
    for name in ["www1-local.params", "www2-local.params", "www2-local.passphrase"]:
        assert stat.S_IMODE((keys(site) / name).stat().st_mode) == 0o600
    assert sorted(p.name for p in keys(site).iterdir()) == [
        "www1-local.params",
        "www2-local.params",
        "www2-local.passphrase",
    ]


def test_dom0_image_is_sealed_and_opens_to_the_exact_file_system(site, tmp_path):
    sealed = site.image("www1", "local.img")
    with open(sealed, "rb") as f:
        assert not has_ffs_superblock(f.read(1 << 20))
    local = opened(site, "www1", tmp_path)
    fstab = local.text("etc/fstab")
    assert "/dev/xbd2a\t/local\t\tffs\trw" in fstab  # the domU sees the plain disk
    assert local.stat("etc/cgd/xbd1d").mode == 0o600
    assert "hostname=www1" in local.text("etc/rc.conf")
    assert_netbsd_accepts(local.image, "ffs")


def test_a_wrong_key_is_refused_by_verify_method_ffs(site, tmp_path):
    wrong = generate("aes-xts", 256, verify_method="ffs")
    with pytest.raises(DomusError, match="wrong key or passphrase"):
        decrypt_file(wrong, site.image("www1", "local.img"), tmp_path / "garbage")
    assert not (tmp_path / "garbage").exists()


def test_no_key_is_written_outside_the_key_directory(site):
    params = parse((keys(site) / "www1-local.params").read_text())
    key = params.keygens[0].key
    encoded = base64.b64encode(len(key * 8).to_bytes(4, "big") + key)
    passphrase = (keys(site) / "www2-local.passphrase").read_bytes().strip()
    for path in site.output.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            for secret in (key, encoded, passphrase):
                assert secret not in data, f"{path} holds a secret"


def test_the_dom0_opens_it_through_the_hotplug_script(site):
    config = (site.output / "xen" / "www1.cfg").read_text()
    script = site.output / "xen" / "block-domus-cgd"
    line = next(x for x in config.splitlines() if "vdev=xvdc" in x)
    assert f"script={script}" in line
    assert line.endswith(
        f"target={site.image('www1', 'local.img')},{keys(site) / 'www1-local.params'}',"
    )
    assert os.access(script, os.X_OK)
    assert subprocess.run(["sh", "-n", str(script)]).returncode == 0
    other = (site.output / "xen" / "db1.cfg").read_text()
    assert "script=" not in other


def test_domu_image_opens_with_its_passphrase_and_root_carries_its_params(site, tmp_path):
    passphrase = (keys(site) / "www2-local.passphrase").read_text().strip().encode()
    local = opened(site, "www2", tmp_path, passphrase)
    assert "/dev/cgd1a\t/local\t\tffs\trw" in local.text("etc/fstab")
    params = parse((keys(site) / "www2-local.params").read_text())
    assert params.verify_method == "ffs"
    assert (params.algorithm, params.bits) == ("aes-cbc", 256)
    assert type(params.keygens[0]).__name__ == "Pkcs5Pbkdf2Sha1"
    root = ImageReader(site.image("root.img"), "ffs")
    assert root.text("etc/cgd/domus/www2-local") == (keys(site) / "www2-local.params").read_text()
    assert root.stat("etc/cgd/domus/www2-local").mode == 0o600
    assert "etc/cgd/domus/www1-local" not in root.paths()  # the dom0 keeps www1's key
    hook = root.text("etc/rc.pre-hooks")
    assert "cgdconfig -p cgd1 /dev/xbd2d" in hook
    assert subprocess.run(["sh", "-n"], input=hook, text=True).returncode == 0


def test_a_rebuild_keeps_the_keys(site):
    before = {p.name: p.read_bytes() for p in keys(site).iterdir()}
    assert site.build().ran == set()
    assert {p.name: p.read_bytes() for p in keys(site).iterdir()} == before


def test_a_key_readable_by_others_is_refused(tmp_path):
    site = Site(tmp_path / "site")
    site.data["domains"]["www1"]["local"] = {"encrypt": "dom0"}
    site.save()
    site.build()
    key = site.directory / "keys" / "www1-local.params"
    key.chmod(0o644)
    run = site.doit()
    assert run.returncode == 78
    assert f"{key} can be read by group or others (mode 0644)" in run.stderr
    assert "chmod 600" in run.stderr


def test_a_passphrase_for_an_ext2fs_local_image_is_a_config_error(tmp_path):
    site = Site(tmp_path / "site")
    site.data["domains"]["db1"]["local"]["encrypt"] = "domu"
    site.save()
    run = site.doit()
    assert run.returncode == 78
    assert "domains.db1.local.encrypt: a local.img the domU opens with a passphrase" in run.stderr
    assert "must be ffs" in run.stderr
    assert not (site.directory / "keys").exists()


def test_an_encrypted_ext2fs_image_converges_through_domus_own_cgd(tmp_path):
    site = Site(tmp_path / "site")
    site.data["domains"]["db1"]["local"]["encrypt"] = "dom0"
    site.save()
    site.build()
    params = parse((keys(site) / "db1-local.params").read_text())
    assert params.verify_method == "none"  # cgdconfig cannot check ext2fs; domus checks it
    image = site.image("db1", "local.img")
    # the domU's own data, written into the sealed image as the domU would
    plain = tmp_path / "plain.img"
    decrypt_file(params, image, plain)
    data = tmp_path / "data"
    data.write_bytes(os.urandom(5000))
    subprocess.run(
        ["debugfs", "-w", "-R", f"write {data} /var/msgs/letter", str(plain)],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        ["debugfs", "-w", "-R", "sif /var/msgs/letter uid 1001", str(plain)],
        check=True,
        capture_output=True,
    )
    encrypt_file(params, plain, image)
    site.data["domains"]["db1"]["rc_conf"]["postgresql"] = True
    site.save()
    run = site.build()
    assert run.ran == {"local:db1"}
    assert "converged" in run.stderr or "converged" in run.stdout
    after = tmp_path / "after.img"
    decrypt_file(params, image, after)
    local = ImageReader(after, "ext2fs")
    assert "postgresql=YES" in local.text("etc/rc.conf").splitlines()
    assert [p for p in local.paths() if p.startswith("etc/rc.conf.domus-")]
    assert local.read("var/msgs/letter") == data.read_bytes()
    assert local.stat("var/msgs/letter").uid == 1001
    assert subprocess.run(["e2fsck", "-fn", str(after)], capture_output=True).returncode == 0
    assert_netbsd_accepts(after, "ext2fs")
    assert not [p for p in image.parent.iterdir() if "plain" in p.name or "partial" in p.name]
    assert site.build().ran == set()


def test_a_sealed_image_with_a_wrong_key_is_refused_and_left_alone(tmp_path):
    site = Site(tmp_path / "site")
    site.data["domains"]["db1"]["local"]["encrypt"] = "dom0"
    site.save()
    site.build()
    image = site.image("db1", "local.img")
    before = image.read_bytes()
    key = keys(site) / "db1-local.params"
    key.write_text(format(generate("aes-xts", 256, verify_method="none")))
    site.data["domains"]["db1"]["rc_conf"]["postgresql"] = True
    site.save()
    run = site.doit()
    assert run.returncode != 0
    assert "does not decrypt to an ext2fs file system with its key" in run.stdout
    assert image.read_bytes() == before
    assert not [p for p in image.parent.iterdir() if "plain" in p.name]
