"""Build the example site as an operator would and read every image back with The Sleuth Kit."""

from __future__ import annotations

import subprocess

import pytest

from tasks.site.netbsd import DEFAULT_BRIDGE, this_dom0
from tests.conftest import REPO
from tests.image_reader import ImageReader
from tests.netbsd_rules import assert_netbsd_accepts
from tests.sites import Site

EXAMPLE_ROOT = REPO / "config" / "example" / "root"
KERNEL = REPO / "config" / "example" / "netbsd-XEN3_DOMU"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Site:
    site = Site(tmp_path_factory.mktemp("e2e"))
    site.build()
    return site


@pytest.fixture(scope="module")
def root(site) -> ImageReader:
    return ImageReader(site.image("root.img"), "ffs")


def local_reader(site: Site, name: str) -> ImageReader:
    fs = "ext2fs" if name == "db1" else "ffs"
    return ImageReader(site.image(name, "local.img"), fs)


def test_netbsd_accepts_every_image(site):
    assert_netbsd_accepts(site.image("root.img"), "ffs")
    for name in ("www1", "www2", "db1"):
        assert_netbsd_accepts(site.image(name, "local.img"), "ext2fs" if name == "db1" else "ffs")
    for name in ("www1", "www2"):  # db1 has no packages
        assert_netbsd_accepts(site.image(name, "pkg.img"), "ffs")


def test_kernel_is_installed_under_its_name_with_netbsd_hard_linked(root):
    kernel, netbsd = root.stat("netbsd-XEN3_DOMU"), root.stat("netbsd")
    assert kernel.number == netbsd.number
    assert kernel.nlink == 2
    assert kernel.mode == 0o444
    assert root.read("netbsd") == KERNEL.read_bytes()


def test_dev_holds_only_makedev_with_a_patched_init_target(root):
    assert {p for p in root.paths() if p.startswith("dev/")} == {"dev/MAKEDEV"}
    makedev = root.text("dev/MAKEDEV")
    init = makedev[makedev.index("\ninit)\n") :]
    init = init[: init.index(";;")]
    words = [
        w for line in init.splitlines() if line.startswith("\tmakedev") for w in line.split()[1:]
    ]
    for device in ["xbd2", "xbd3", "xbd4", "pf", "tun3", "tap3", "kttcp", "vnd0", "sysmon"]:
        assert device in words
    for device in ["wscons", "fd0", "wd0", "sd1", "cd0", "audio", "speaker", "all", "all_md"]:
        assert device not in words
    assert words[-1] == "local"
    assert root.stat("dev/MAKEDEV").mode == 0o555


def test_mount_points(root):
    for path in ["emul", "local", "usr/pkg", "kern", "proc"]:
        assert root.stat(path).type == "dir"


def test_rc_sources_the_hook_before_rc_subr_and_keeps_the_original(root):
    original = (EXAMPLE_ROOT / "etc" / "rc").read_text()
    assert root.text("etc/rc.orig") == original
    patched = root.text("etc/rc").splitlines()
    hook = patched.index("\t. /etc/rc.pre-hooks")
    assert patched[hook + 1] == "\t. /etc/rc.subr"
    assert [line for line in patched if "rc.pre-hooks" not in line] == original.splitlines()


def test_pre_hook_mounts_local_and_reexecutes_rc(root):
    hook = root.text("etc/rc.pre-hooks")
    # db1 keeps /local on ext2fs, the others on ffs: the shared hook tries both.
    assert "for _fs in ext2fs ffs; do" in hook
    assert "if _domus_out=$(fsck_$_fs -p /dev/rxbd2a 2>&1); then" in hook
    assert "_domus_dev=xbd2a" in hook
    assert "mount -r -t $_domus_fs /dev/$_domus_dev /local" in hook
    assert "cgdconfig" not in hook  # no domU here keeps /local encrypted
    assert subprocess.run(["sh", "-n"], input=hook, text=True).returncode == 0
    assert "mount -t null /local/etc /etc" in hook
    assert 'exec /bin/sh /etc/rc "$@"' in hook
    assert "exit 1" in hook
    assert root.stat("etc/rc.pre-hooks").mode == 0o644


def test_root_owners_and_modes_come_from_the_metalog(root):
    assert root.stat("tmp").mode == 0o1777
    assert root.stat("etc/master.passwd").mode == 0o600
    msgs = root.stat("var/msgs")
    assert (msgs.uid, msgs.gid) == (1, 1)
    ftp = root.stat("var/spool/ftp")
    assert (ftp.uid, ftp.gid, ftp.mode) == (2, 5, 0o750)
    assert root.stat("usr/bin/sh").link == "/bin/sh"


@pytest.mark.parametrize("name", ["www1", "www2", "db1"])
def test_local_image_holds_etc_tmp_var_with_the_vanilla_rc(site, name):
    local = local_reader(site, name)
    tops = {p.split("/")[0] for p in local.paths()}
    assert tops == {"etc", "tmp", "var"}
    assert local.text("etc/rc") == (EXAMPLE_ROOT / "etc" / "rc").read_text()
    assert "etc/rc.orig" not in local.paths()
    assert "etc/rc.pre-hooks" not in local.paths()
    assert local.stat("tmp").mode == 0o1777
    assert local.stat("var/msgs").uid == 1
    assert local.text("etc/motd") == (EXAMPLE_ROOT / "etc" / "motd").read_text()


def test_local_fstab_rc_conf_d_and_swap(site):
    local = local_reader(site, "db1")
    fstab = [
        line.split()
        for line in local.text("etc/fstab").splitlines()
        if line and not line.startswith("#")
    ]
    assert fstab == [
        ["/dev/xbd0a", "/", "ffs", "ro", "0", "0"],
        ["/dev/cgd0b", "none", "swap", "sw", "0", "0"],
        ["/dev/xbd2a", "/local", "ext2fs", "rw", "0", "0"],
        ["/dev/xbd3a", "/usr/pkg", "ffs", "ro", "0", "0"],
        ["/local/etc", "/etc", "null", "rw", "0", "0"],
        ["/local/tmp", "/tmp", "null", "rw", "0", "0"],
        ["/local/var", "/var", "null", "rw", "0", "0"],
        ["kernfs", "/kern", "kernfs", "rw"],
        ["procfs", "/proc", "procfs", "rw"],
    ]
    assert "mount -u -w /local" in local.text("etc/rc.conf.d/root")
    params = local.text("etc/cgd/xbd1d")
    assert params.splitlines() == [
        "algorithm aes-cbc;",
        "iv-method encblkno1;",
        "keylength 256;",
        "verify_method none;",
        "keygen urandomkey;",
    ]
    assert local.stat("etc/cgd/xbd1d").mode == 0o600
    assert local.stat("etc/cgd").mode == 0o700
    assert local.text("etc/cgd/cgd.conf").splitlines()[-1] == "cgd0\t/dev/xbd1d"
    label = local.text("etc/cgd/xbd1d.disklabel")
    assert "total sectors: 262144" in label
    assert " b: 262144 0 swap" in label
    assert 'start_postcmd="cgd_swap"' in local.text("etc/rc.conf.d/cgd")


def test_rc_conf_gets_the_managed_variables_and_keeps_the_rest(site):
    text = local_reader(site, "www1").text("etc/rc.conf")
    original = (EXAMPLE_ROOT / "etc" / "rc.conf").read_text().splitlines()
    lines = text.splitlines()
    for line in original:
        if not line.startswith("rc_configured="):
            assert line in lines
    for expected in [
        "rc_configured=YES",
        'critical_filesystems_local="/local /etc /tmp /var"',
        "powerd=YES",
        "savecore=NO",
        "sendmail=NO",
        "wscons=NO",
        "random_file=/local/var/db/entropy-file",
        "hostname=www1",
        'ifconfig_xennet0="inet 192.0.2.11 netmask 255.255.255.0"',
        "httpd=YES",
        "sshd=YES",
        "ntpd=YES",
    ]:
        assert expected in lines
    assert "rc_configured=NO" not in lines
    # rc.d/random_seed saves the seed there: it must be a root-owned directory
    seed_dir = local_reader(site, "www1").stat("var/db")
    assert (seed_dir.mode, seed_dir.uid) == (0o755, 0)


def test_ttys_getty_on_the_console_alone_and_crontab_without_daily_weekly(site):
    local = local_reader(site, "www2")
    status = {
        line.split()[0]: line.split()[-2]
        for line in local.text("etc/ttys").splitlines()
        if line and not line.startswith("#")
    }
    # the example root ships NetBSD 9's shape (console off, constty on): kept as it ships
    assert (status.pop("console"), status.pop("constty")) == ("off", "on")
    assert set(status.values()) == {"off"}
    crontab = local.text("var/cron/tabs/root").splitlines()
    assert any(line.startswith("#15\t3") and "/etc/daily" in line for line in crontab)
    assert any(line.startswith("#30\t4") and "/etc/weekly" in line for line in crontab)
    assert "0\t*\t*\t*\t*\t/usr/bin/newsyslog" in crontab
    assert local.stat("var/cron/tabs/root").mode == 0o600


def test_pkg_images(site):
    www1 = ImageReader(site.image("www1", "pkg.img"), "ffs")
    assert {"pkgdb/domus-motd-1.0/+CONTENTS", "pkgdb/domus-hello-1.0/+CONTENTS"} <= www1.paths()
    assert "domus-hello-1.0" in www1.text("pkgdb/domus-motd-1.0/+REQUIRED_BY")
    assert "bin/domus-hello" in www1.paths()
    www2 = ImageReader(site.image("www2", "pkg.img"), "ffs")
    assert "bin/domus-hello" not in www2.paths()
    assert "bin/domus-motd" in www2.paths()
    db1 = ImageReader(site.image("db1", "pkg.img"), "ffs")
    assert db1.paths() == set()


def test_swap_is_sparse_and_sized(site):
    swap = site.image("db1", "swap.img")
    assert swap.stat().st_size == 128 << 20
    assert swap.stat().st_blocks == 0


def test_images_are_sparse(site):
    root = site.image("root.img")
    assert root.stat().st_blocks * 512 < root.stat().st_size // 2


def test_xl_config(site):
    text = (site.output / "xen" / "db1.cfg").read_text()
    images = site.output / "images"
    assert 'name = "db1"' in text
    assert f'kernel = "{images / "netbsd-XEN3_DOMU"}"' in text
    assert (images / "netbsd-XEN3_DOMU").read_bytes() == KERNEL.read_bytes()
    assert 'root = "xbd0a"' in text
    assert "memory = 512" in text
    assert "vcpus = 2" in text
    # the example site leaves the bridge to the dom0 setting, which defaults to this host
    bridge = DEFAULT_BRIDGE[this_dom0() or "netbsd"]
    assert f"vif = [ 'bridge={bridge}' ]" in text
    disks = [line.strip() for line in text.splitlines() if "vdev=" in line]
    assert disks == [
        f"'format=raw, vdev=xvda, access=ro, target={images / 'root.img'}',",
        f"'format=raw, vdev=xvdb, access=rw, target={images / 'db1' / 'swap.img'}',",
        f"'format=raw, vdev=xvdc, access=rw, target={images / 'db1' / 'local.img'}',",
        f"'format=raw, vdev=xvdd, access=ro, target={images / 'db1' / 'pkg.img'}',",
    ]


def test_no_partial_files_are_left(site):
    leftovers = [p for p in site.output.rglob("*") if p.name.endswith(".partial")]
    assert leftovers == []


def test_task_names_read_well(site):
    listing = site.doit("list", "--all").stdout.split()
    for name in ["root", "local:www1", "pkg:www1", "swap:www1", "xen:www1", "local:db1"]:
        assert name in listing


@pytest.mark.parametrize("name", ["www1", "db1"])
def test_every_local_image_rebuilds_the_password_databases_at_boot(site, name):
    local = local_reader(site, name)
    script = local.stat("etc/rc.d/pwd_mkdb")
    assert (script.type, script.mode, script.uid, script.gid) == ("file", 0o555, 0, 0)
    assert "\t\tpwd_mkdb -p /etc/master.passwd\n" in local.text("etc/rc.d/pwd_mkdb")
