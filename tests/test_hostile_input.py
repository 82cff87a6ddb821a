"""Hostile templates and bad input: a one-line error and the right exit status, never a
traceback, and nothing of the input in an image."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import stat
import struct
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tasks.run.errors import DomusError
from tests.mounting import sha
from tests.netbsd_rules import assert_netbsd_accepts
from tests.sites import Site
from tests.test_cli import domus

PAYLOAD = "{{ cycler.__init__.__globals__.os.popen('id').read() }}\n"


def site_with_templates(tmp_path: Path) -> tuple[Site, Path]:
    site = Site(tmp_path / "site")
    templates = site.directory / "templates"
    site.data["templates"] = "templates"
    site.save()
    return site, templates


def output_bytes(site: Site) -> bytes:
    return b"".join(p.read_bytes() for p in site.output.rglob("*") if p.is_file())


def test_a_template_cannot_run_a_command(tmp_path):
    site, templates = site_with_templates(tmp_path)
    for group in ("root", "local"):
        (templates / group / "etc").mkdir(parents=True)
        (templates / group / "etc" / "motd").write_text(f"id: {PAYLOAD}")
    done = domus("build", f"config={site.path}", cwd=tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr + done.stdout
    assert f"{templates / 'root' / 'etc' / 'motd'}:1: access to attribute '__init__'" in done.stdout
    assert "is unsafe" in done.stdout
    assert b"uid=" not in output_bytes(site)


def test_a_template_cannot_read_a_host_file(tmp_path):
    site, templates = site_with_templates(tmp_path)
    (templates / "root" / "etc").mkdir(parents=True)
    secret = tmp_path / "secret"
    secret.write_text("hunter2\n")
    (templates / "root" / "etc" / "motd").write_text(
        f"{{{{ lipsum.__globals__.__builtins__.open('{secret}').read() }}}}\n"
    )
    done = domus("build", f"config={site.path}", cwd=tmp_path)
    assert done.returncode == 1
    assert "is unsafe" in done.stdout
    assert b"hunter2" not in output_bytes(site)


def test_a_symlink_out_of_the_template_directory_is_refused(tmp_path):
    site, templates = site_with_templates(tmp_path)
    (templates / "root" / "etc").mkdir(parents=True)
    link = templates / "root" / "etc" / "shadow"
    link.symlink_to("/etc/shadow")
    done = domus("build", f"config={site.path}", cwd=tmp_path)
    assert done.returncode != 0
    out = done.stdout + done.stderr
    assert "Traceback" not in out
    assert f"{link}: a symlink leads out of the template directory" in out
    assert not list(site.output.rglob("root.img"))


def test_a_symlinked_directory_out_of_the_template_directory_is_refused(tmp_path):
    site, templates = site_with_templates(tmp_path)
    (templates / "local").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "motd").write_text("outside\n")
    (templates / "local" / "etc").symlink_to(outside)
    done = domus("build", f"config={site.path}", cwd=tmp_path)
    assert done.returncode != 0
    assert f"{templates / 'local' / 'etc'}: a symlink leads out" in done.stdout + done.stderr
    assert b"outside\n" not in output_bytes(site)


def test_a_symlink_inside_the_template_directory_is_followed(tmp_path):
    site, templates = site_with_templates(tmp_path)
    (templates / "root" / "etc").mkdir(parents=True)
    (templates / "root" / "etc" / "motd").write_text("kernel {{ kernel }}\n")
    os.symlink("motd", templates / "root" / "etc" / "motd.copy")
    done = domus("build", f"config={site.path}", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def names_in(image: Path) -> list[bytes]:
    """Every path in `image` as The Sleuth Kit lists it: raw bytes, as NetBSD stores them."""
    listing = subprocess.run(["fls", "-r", "-p", str(image)], capture_output=True, check=True)
    return [line.split(b"\t", 1)[1] for line in listing.stdout.splitlines()]


def test_a_file_name_that_is_not_utf8_keeps_its_bytes(tmp_path):
    site = Site(tmp_path / "site")
    tree = tmp_path / "pkgtree"
    (tree / "share").mkdir(parents=True)
    (Path(os.fsdecode(os.fsencode(tree / "share") + b"/caf\xe9"))).write_bytes(b"latin-1\n")
    site.data["domains"]["www2"]["pkg"] = {"source": {"tree": str(tree)}}
    site.data["domains"]["db1"]["pkg"] = {"fs": "ext2fs", "source": {"tree": str(tree)}}
    site.save()
    done = domus("build", f"config={site.path}", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    for name, fs in (("www2", "ffs"), ("db1", "ext2fs")):
        image = site.image(name, "pkg.img")
        assert b"share/caf\xe9" in names_in(image)
        assert_netbsd_accepts(image, fs)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("./etc uid=abc", "uid=abc: expected a number from 0 to 4294967294"),
        ("./etc mode=99", "mode=99: expected an octal mode such as 0755"),
        ("./etc gid=-1", "gid=-1: expected a number from 0 to 4294967294"),
    ],
)
def test_a_bad_metalog_value_names_its_file_and_line(tmp_path, line, message):
    site = Site(tmp_path / "site")
    metalog = tmp_path / "root.metalog"
    original = Path(site.data["root"]["source"]["metalog"]).read_text()
    metalog.write_text(original + line + "\n")
    site.data["root"]["source"]["metalog"] = str(metalog)
    site.save()
    done = domus("build", f"config={site.path}", cwd=tmp_path)
    assert done.returncode == 1
    number = len(original.splitlines()) + 1
    assert f"{metalog}:{number}: ./etc: {message}" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


@contextmanager
def tmpfs(directory: Path, size: str, *options: str) -> Iterator[Path]:
    """A small tmpfs on `directory`, unmounted afterwards (the tests run as root)."""
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", ",".join([f"size={size}", *options]), "tmpfs", directory],
        check=True,
    )
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", directory], check=True)


def fill(directory: Path) -> None:
    with contextlib.suppress(OSError), open(directory / "filler", "wb", buffering=0) as f:
        while True:
            f.write(b"\0" * 4096)


def test_a_full_disk_while_saving_the_template_cache_is_one_line(tmp_path):
    site = Site(tmp_path / "site")
    with tmpfs(site.output / "cache", "64k") as cache:
        fill(cache)
        done = domus("build", f"config={site.path}", cwd=tmp_path)
        left = sorted(p.name for p in cache.iterdir())
    assert done.returncode == 1
    assert done.stderr == (
        f"domus: {cache}/template-references.json: cannot save the template-reference "
        "cache: No space left on device\n  hint: free space on its file system\n"
    )
    assert left == ["filler"]


def test_a_lock_directory_on_a_read_only_file_system_is_one_line(tmp_path):
    # a lock directory that is a file, or below one, is refused when the site is read
    site = Site(tmp_path / "site")
    locks = tmp_path / "locks"
    site.data["locks"] = str(locks)
    site.save()
    with tmpfs(locks, "64k", "ro"):
        done = domus("build", f"config={site.path}", cwd=tmp_path)
    assert done.returncode == 78
    assert done.stderr.splitlines()[0] == (
        f"domus: {locks}: the lock directory (locks: in the site file) cannot be used: "
        "Read-only file system"
    )
    assert "Traceback" not in done.stderr
    assert not list(site.output.rglob("*.img"))


def test_a_full_disk_while_saving_an_attachment_record_leaves_no_temporary(tmp_path):
    from tasks.blockdev.records import Record, record_path, save
    from tasks.run.errors import DomusError

    locks = tmp_path / "locks"
    with tmpfs(locks, "64k"):
        record_path(locks, "x").parent.mkdir(parents=True)
        fill(locks)
        with pytest.raises(DomusError, match="No space left on device"):
            save(locks, Record("vnd", 0, "vnd0", 1, "/x.img", "testing", "/mnt"))
        left = sorted(p.name for p in record_path(locks, "x").parent.iterdir())
    assert left == []


def test_a_full_host_disk_is_not_an_image_too_small(tmp_path):
    site = Site(tmp_path / "site")
    site.data["locks"] = str(tmp_path / "locks")
    site.save()
    with tmpfs(site.output, "8m"):
        done = domus("build", f"config={site.path}", cwd=tmp_path)
        images = [p.name for p in site.output.rglob("*") if p.is_file() and ".img" in p.name]
    assert done.returncode == 1
    assert "do not fit" not in done.stdout
    generations = site.output / "images" / "generations"
    assert re.search(
        rf"^FAILED   root +{generations}/root: the disk is full: root.img needs 16.0 MiB "
        r"while it is written and 7.\d MiB is free$",
        done.stdout,
        re.M,
    ), done.stdout
    assert "hint: free space on that disk, or set output: in the site file" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    # only the sparse swap images fit; no partial image is left behind
    assert images == ["swap.img"] * 3


def first_block_pointer(image: Path, fs: str, inode: int) -> int:
    """The 32-bit word where NetBSD's ffs and ext2fs keep a device node's dev_t (the first
    block pointer), read from the image's bytes: small images have one cylinder group."""
    data = image.read_bytes()

    def u32(offset: int) -> int:
        return struct.unpack_from("<I", data, offset)[0]

    if fs == "ffs":
        sb = 8192
        assert u32(sb + 44) == 1 and inode < u32(sb + 184)  # fs_ncg, fs_ipg
        table = u32(sb + 16) * u32(sb + 52)  # fs_iblkno * fs_fsize
        return u32(table + inode * 128 + 40)  # di_db[0]
    block = 1024 << u32(1024 + 24)  # s_log_block_size
    assert inode <= u32(1024 + 40)  # s_inodes_per_group
    descriptors = 2048 if block == 1024 else block
    table = u32(descriptors + 8) * block  # bg_inode_table of group 0
    return u32(table + (inode - 1) * 128 + 40)  # i_block[0]


def netbsd_major_minor(dev: int) -> tuple[int, int]:
    """NetBSD's major() and minor() of <sys/types.h>."""
    return (dev & 0x000FFF00) >> 8, ((dev & 0xFFF00000) >> 12) | (dev & 0x000000FF)


def test_device_nodes_and_fifos_go_into_the_image_and_sockets_are_left_out(tmp_path):
    tree = tmp_path / "pkgtree"
    (tree / "dev").mkdir(parents=True)
    os.mknod(tree / "dev" / "null", 0o666 | stat.S_IFCHR, os.makedev(2, 2))
    os.mknod(tree / "dev" / "wd0a", 0o640 | stat.S_IFBLK, os.makedev(19, 0))
    os.mkfifo(tree / "dev" / "fifo", 0o600)
    for node, mode in (("null", 0o666), ("wd0a", 0o640)):
        os.chmod(tree / "dev" / node, mode)  # past the umask
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(tree / "dev" / "socket"))
    site = Site(tmp_path / "site")
    site.data["domains"]["www2"]["pkg"] = {"source": {"tree": str(tree)}}
    site.data["domains"]["db1"]["pkg"] = {"fs": "ext2fs", "source": {"tree": str(tree)}}
    site.save()
    done = domus("build", f"config={site.path}", cwd=tmp_path)
    listener.close()
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"warning: {tree / 'dev' / 'socket'}: a socket" in done.stderr
    for name, fs in (("www2", "ffs"), ("db1", "ext2fs")):
        image = site.image(name, "pkg.img")
        listing = subprocess.run(["fls", "-r", "-p", str(image)], capture_output=True, text=True)
        found = {}
        for line in listing.stdout.splitlines():
            kind, number, path = re.fullmatch(
                r"(\S+) \**\s*(\d+)(?:\(realloc\))?:\t(.*)", line
            ).groups()
            found[path] = (kind, int(number))
        assert "dev/socket" not in found
        expected = {
            "dev/null": ("c/c", "crw-rw-rw-", (2, 2)),
            "dev/wd0a": ("b/b", "brw-r-----", (19, 0)),
            "dev/fifo": ("p/p", "prw-------", None),
        }
        for path, (kind, mode, device) in expected.items():
            assert found[path][0] == kind, (fs, path, found)
            inode = found[path][1]
            istat = subprocess.run(
                ["istat", str(image), str(inode)], capture_output=True, text=True
            ).stdout
            assert f"mode: {mode}" in istat, (fs, path, istat)
            if device is not None:
                assert netbsd_major_minor(first_block_pointer(image, fs, inode)) == device
        assert_netbsd_accepts(image, fs)


def test_a_metalog_device_node_goes_into_the_image(tmp_path):
    site = Site(tmp_path / "site")
    metalog = tmp_path / "root.metalog"
    original = Path(site.data["root"]["source"]["metalog"]).read_text()
    metalog.write_text(original + "./etc/console type=char device=netbsd,4,1 mode=0600\n")
    site.data["root"]["source"]["metalog"] = str(metalog)
    site.save()
    done = domus("build", f"config={site.path}", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    image = site.output / "images" / "root.img"
    listing = subprocess.run(["fls", "-r", "-p", str(image)], capture_output=True, text=True)
    line = next(x for x in listing.stdout.splitlines() if x.endswith("\tetc/console"))
    inode = int(re.search(r"(\d+):", line)[1])
    assert line.startswith("c/c ")
    istat = subprocess.run(["istat", str(image), str(inode)], capture_output=True, text=True)
    assert "mode: crw-------" in istat.stdout
    assert netbsd_major_minor(first_block_pointer(image, "ffs", inode)) == (4, 1)
    assert_netbsd_accepts(image, "ffs")


def test_a_full_disk_under_doits_database_is_one_line(tmp_path):
    site = Site(tmp_path / "site")
    site.data["locks"] = str(tmp_path / "locks")
    site.save()
    with tmpfs(site.output, "64k") as output:
        fill(output)
        done = domus("build", f"config={site.path}", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr == (
        f"domus: {output}/.doit.db: the disk is full: cannot record which tasks are up to "
        "date\n  hint: free space on the disk of the output directory\n"
    )


def test_an_ffs_image_naming_one_path_twice_is_refused_before_it_is_staged(tmp_path):
    """A crafted local.img whose /var holds a symlink and a directory of one name: staged
    as it is, the directory's entries would be made through the link."""
    from tests.test_converge_rewrite import converge, managed_changes, small_image

    image = small_image(tmp_path)
    data = image.read_bytes()
    entry = b"\x04\x04many\0"  # d_type DT_DIR, d_namlen 4: /var/many, renamed /var/fast
    assert data.count(entry) == 1
    image.write_bytes(data.replace(entry, b"\x04\x04fast\0"))
    before = sha(image)
    with pytest.raises(DomusError) as caught:
        converge(image, managed_changes)
    assert f"{image} cannot be rewritten" in caught.value.message
    assert "/var/fast is named twice in its directory" in caught.value.message
    assert sha(image) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["local.img", "spec"]
