"""A file domus wrote into a local.img that the site no longer manages: removed at the next
converge when the domU left it as domus wrote it, kept and reported when the domU changed it;
the record in the image that says what domus wrote is read as hostile input.

The example site converges here in user space: www1 and www2 (FFS) rewritten through
makefs, db1 (ext2fs) through debugfs; an ext2fs site with `converge.mount: true` is mounted
through a loop device, one with `blockdev.backend: none` goes through debugfs. Images are
read back with The Sleuth Kit.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from tasks.converge.plan import Change, FileState, unified_diff
from tasks.converge.retire import recorded, retirement
from tasks.converge.rewrite import opened
from tasks.recipes.local import MUTABLE_DIRS, RC_CONF
from tasks.recipes.managed_record import LIMIT, RECORD, parse_record, record_text
from tests.conftest import REPO
from tests.image_reader import ImageReader
from tests.mounting import loop_mounted, needs_root, release_everything_under
from tests.netbsd_rules import assert_netbsd_accepts
from tests.sites import Site
from tests.test_converge import ext2_site
from tests.test_status import built, domus, status

MOTD = "managed by domus: {{ name }}\n"
FFS, EXT2FS = ("www1", "www2"), ("db1",)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parsed(text: str) -> tuple[dict[str, str], list[str]]:
    found = parse_record(text.encode(), "local.img", MUTABLE_DIRS, (RC_CONF, RECORD))
    return found.written, found.warnings


# -- the record, parsed as hostile input ------------------------------------------------------


def test_a_record_keeps_only_plain_paths_below_the_image_trees():
    good = "a" * 64
    written, warnings = parsed(
        record_text({"etc/motd": good, "var/db/x y": good})
        + f"{good} /etc/passwd\n"
        + f"{good} etc/../../etc/passwd\n"
        + f"{good} ../etc/passwd\n"
        + f"{good} etc//motd2\n"
        + f"{good} usr/bin/su\n"
        + f"{good} etc\n"
        + f"{good} etc/rc.conf\n"
        + f"{good} {RECORD}\n"
        + f"{good} etc/a\x00b\n"
        + f"{good} etc/new\\nline\n"
        + f'{good} etc/"quoted"\n'
        + f"{'A' * 64} etc/upper\n"
        + "nothing etc/x\n"
        + f"{good} etc/{'n' * 256}\n"
    )
    assert written == {"etc/motd": good, "var/db/x y": good}
    assert len(warnings) == 1 and "ignored 14 line(s)" in warnings[0]
    assert "an absolute path" in warnings[0]


def test_a_path_named_twice_is_trusted_neither_time():
    written, warnings = parsed(f"{'a' * 64} etc/motd\n{'b' * 64} etc/motd\n{'c' * 64} etc/motd\n")
    assert written == {}
    assert "named twice" in warnings[0]


def test_a_record_over_the_limit_is_ignored_whole():
    line = f"{'a' * 64} etc/motd\n"
    written, warnings = parsed(line * (LIMIT // len(line) + 1))
    assert written == {}
    assert f"over {LIMIT}" in warnings[0]
    bad_utf8 = parse_record(b"\xff\xfe etc/motd\n", "x", MUTABLE_DIRS)
    assert bad_utf8.written == {} and "not UTF-8" in bad_utf8.warnings[0]


def test_a_removal_is_shown_as_a_diff_to_dev_null():
    old = FileState(b"managed by domus: db1\n", 0o644, 0, 0)
    assert unified_diff(Change("etc/motd", old, None), "db1") == (
        "# db1:/etc/motd: no longer managed, removed (kept as its backup)\n"
        "--- db1:/etc/motd\t(in the image)\n"
        "+++ /dev/null\n"
        "@@ -1 +0,0 @@\n"
        "-managed by domus: db1\n"
    )


# -- whole sites ------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def nothing_left_behind(tmp_path):
    yield
    release_everything_under(tmp_path)


def add_motd(site: Site) -> Path:
    motd = site.directory / "templates" / "local" / "etc" / "motd"
    motd.parent.mkdir(parents=True, exist_ok=True)
    motd.write_text(MOTD)
    site.data["templates"] = "templates"
    site.save()
    return motd


def reader(site: Site, name: str) -> ImageReader:
    return ImageReader(site.image(name, "local.img"), "ffs" if name in FFS else "ext2fs")


def record_of(site: Site, name: str) -> dict[str, str]:
    text = reader(site, name).text(RECORD)
    return dict(reversed(line.split(" ", 1)) for line in text.splitlines()[1:])


def backups(site: Site, name: str, path: str) -> list[str]:
    return sorted(p for p in reader(site, name).paths() if p.startswith(f"{path}.domus-"))


def change_in_ffs(image: Path, path: str, data: bytes) -> None:
    """What the domU's administrator does to a file of an FFS image, made here with domus's
    own rewrite (Linux cannot write FFS), leaving no backup and no old image behind."""
    with opened(image, keep_images=0) as files:
        old = files.current(path)
        assert old is not None
        new = FileState(data, old.mode, old.uid, old.gid)
        files.apply([Change(path, old, new)], "20010101T000000", 0)


@needs_root
def test_a_template_the_site_drops_leaves_every_local_image_with_a_backup(tmp_path):
    site = built(tmp_path)
    templates = REPO / "templates" / "local"
    written = {str(p.relative_to(templates)) for p in templates.rglob("*") if p.is_file()}
    for name in (*FFS, *EXT2FS):  # the build's record: every file it wrote from a template
        image = reader(site, name)
        assert record_of(site, name) == {path: sha(image.read(path)) for path in written}
        assert reader(site, name).stat(RECORD).mode == 0o600
    motd = add_motd(site)
    assert domus(site, "build").returncode == 0
    for name in (*FFS, *EXT2FS):
        assert reader(site, name).text("etc/motd") == f"managed by domus: {name}\n"
        assert record_of(site, name)["etc/motd"] == sha(f"managed by domus: {name}\n".encode())
        assert "etc/rc.conf" not in record_of(site, name)
    motd.unlink()

    items = status(site)
    for name in (*FFS, *EXT2FS):
        assert items[(name, "local")]["action"] == "converge"
        assert "/etc/motd: no longer managed, removed" in items[(name, "local")]["why"]
    dry = domus(site, "converge", "--dry-run", "db1")
    assert dry.returncode == 1, dry.stderr
    assert "--- db1:/etc/motd\t(in the image)\n+++ /dev/null\n" in dry.stdout
    assert "-managed by domus: db1\n" in dry.stdout
    assert reader(site, "db1").text("etc/motd")  # a dry run changes nothing

    # the example's /etc/motd is NetBSD's, which the template replaced: kept as a backup
    before = {name: backups(site, name, "etc/motd") for name in (*FFS, *EXT2FS)}
    run = domus(site, "build")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.ran == {"local:www1", "local:www2", "local:db1"}
    for name in (*FFS, *EXT2FS):
        image = reader(site, name)
        assert "etc/motd" not in image.paths(), name
        [backup] = set(backups(site, name, "etc/motd")) - set(before[name])
        assert image.text(backup) == f"managed by domus: {name}\n"
        assert "etc/motd" not in record_of(site, name)
        assert_netbsd_accepts(site.image(name, "local.img"), "ffs" if name in FFS else "ext2fs")
    assert run.stderr.count("removed /etc/motd (no longer managed)") == 3
    assert domus(site, "build").ran == set()
    assert domus(site, "converge", "--dry-run", "db1", "www1").returncode == 0


@needs_root
def test_a_dropped_file_the_domu_changed_is_kept_and_reported(tmp_path):
    site = built(tmp_path)
    motd = add_motd(site)
    assert domus(site, "build").returncode == 0
    with loop_mounted(site.image("db1", "local.img")) as top:
        (top / "etc" / "motd").write_text("the admin's own motd\n")
    change_in_ffs(site.image("www1", "local.img"), "etc/motd", b"www1's own motd\n")
    motd.unlink()
    before = {name: backups(site, name, "etc/motd") for name in (*FFS, *EXT2FS)}

    items = status(site)
    kept = "/etc/motd: no longer managed, kept: changed in the domU"
    assert kept in items[("db1", "local")]["why"]
    assert kept in items[("www1", "local")]["why"]
    assert "/etc/motd: no longer managed, removed" in items[("www2", "local")]["why"]

    run = domus(site, "build")
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{site.image('db1', 'local.img')}: {kept}" in run.stderr
    assert f"{site.image('www1', 'local.img')}: {kept}" in run.stderr
    assert reader(site, "db1").text("etc/motd") == "the admin's own motd\n"
    assert reader(site, "www1").text("etc/motd") == "www1's own motd\n"
    assert backups(site, "db1", "etc/motd") == before["db1"]
    assert backups(site, "www1", "etc/motd") == before["www1"]
    assert "etc/motd" not in reader(site, "www2").paths()
    assert len(backups(site, "www2", "etc/motd")) == len(before["www2"]) + 1
    for name in (*FFS, *EXT2FS):
        assert "etc/motd" not in record_of(site, name)  # the domU's file from now on
    assert domus(site, "build").ran == set()


def test_an_ext2fs_image_drops_the_file_through_debugfs(tmp_path):
    site = ext2_site(tmp_path / "site", ("db1",), backend="none")
    motd = add_motd(site)
    site.build()
    assert reader(site, "db1").text("etc/motd") == "managed by domus: db1\n"
    motd.unlink()
    before = backups(site, "db1", "etc/motd")  # NetBSD's motd, which the template replaced
    run = site.build()
    assert run.ran == {"local:db1"}
    assert "(debugfs)" in run.stderr
    assert "etc/motd" not in reader(site, "db1").paths()
    [backup] = set(backups(site, "db1", "etc/motd")) - set(before)
    assert reader(site, "db1").text(backup) == "managed by domus: db1\n"
    assert_netbsd_accepts(site.image("db1", "local.img"), "ext2fs")
    assert site.build().ran == set()


def test_an_image_without_a_record_keeps_every_file(tmp_path):
    """An image built before domus kept the record: nothing removed, nothing reported."""
    site = ext2_site(tmp_path / "site", ("db1",), backend="none")
    motd = add_motd(site)
    site.build()
    image = site.image("db1", "local.img")
    subprocess.run(["debugfs", "-w", "-R", f"rm /{RECORD}", str(image)], check=True)
    assert RECORD not in reader(site, "db1").paths()
    motd.unlink()
    site.data["domains"]["db1"]["rc_conf"]["sshd"] = "NO"
    site.save()
    assert "/etc/motd" not in str(status_why(site, "db1"))
    run = site.build()
    assert "no longer managed" not in run.stderr
    assert reader(site, "db1").text("etc/motd") == "managed by domus: db1\n"
    # the converge that changed rc.conf wrote the record, without the file it never knew
    assert "etc/motd" not in record_of(site, "db1")
    assert "etc/fstab" in record_of(site, "db1")


def status_why(site: Site, name: str) -> list[str]:
    return status(site)[(name, "local")]["why"]


@needs_root
@pytest.mark.parametrize("backend", ["auto", "none"], ids=["mounted", "debugfs"])
def test_a_hostile_record_removes_nothing_it_should_not(tmp_path, backend):
    site = ext2_site(tmp_path / "site", ("db1",), mount=backend != "none", backend=backend)
    image = site.image("db1", "local.img")
    with loop_mounted(image) as top:
        etc = top / "etc"
        passwd = (etc / "passwd").read_bytes()
        (etc / "evil").symlink_to("passwd")  # recorded with passwd's digest
        (top / "var" / "linked").symlink_to("../etc")  # a link on the way
        (etc / "decoy").write_bytes(passwd)
        record = top / RECORD
        lines = record.read_text() + "".join(
            f"{sha(passwd)} {path}\n"
            for path in (
                "/etc/passwd",
                "etc/../etc/passwd",
                "etc/evil",
                "var/linked/passwd",
                "etc/rc.d",  # a directory
                "etc/decoy",  # a plain file, as domus wrote it: the one thing removed
            )
        )
        record.write_text(lines)
    run = domus(site, "converge", "db1")
    assert run.returncode == 0, run.stderr
    assert "ignored 2 line(s)" in run.stderr
    paths = reader(site, "db1").paths()
    assert {"etc/passwd", "etc/evil", "var/linked", "etc/rc.d"} <= paths
    assert reader(site, "db1").read("etc/passwd") == passwd
    assert reader(site, "db1").stat("etc/evil").type == "link"
    assert "etc/decoy" not in paths and backups(site, "db1", "etc/decoy")
    kept = "no longer managed, kept: changed in the domU"
    for path in ("etc/evil", "var/linked/passwd", "etc/rc.d"):
        assert f"/{path}: {kept}" in run.stderr
    assert not {"etc/evil", "var/linked/passwd", "etc/rc.d", "etc/decoy"} & set(
        record_of(site, "db1")
    )
    assert_netbsd_accepts(image, "ext2fs")

    with loop_mounted(image) as top:
        (top / RECORD).write_bytes(b"#" * (LIMIT + 1))
    run = domus(site, "converge", "db1")
    assert run.returncode == 0, run.stderr
    assert f"over {LIMIT}: ignored" in run.stderr
    assert {"etc/passwd", "etc/evil", "etc/fstab"} <= reader(site, "db1").paths()


def test_a_hostile_record_in_an_ffs_image_removes_only_a_plain_file_as_recorded(tmp_path):
    """The FFS reader's side (the rewrite, and status): links, a link on the way and a
    directory are kept; the plain file with the recorded bytes goes, kept as its backup."""
    staging, passwd = tmp_path / "tree", b"root:*:0:0::/root:/bin/sh\n"
    spec = ["#mtree v2.0", ". type=dir uid=0 gid=0 mode=0755"]
    for directory in ("etc", "etc/rc.d", "var", "var/db", "var/db/domus"):
        (staging / directory).mkdir(parents=True)
        spec.append(f"./{directory} type=dir uid=0 gid=0 mode=0755")
    hostile = {"etc/evil", "var/linked/passwd", "etc/rc.d", "etc/decoy", "/etc/passwd"}
    files = {
        "etc/passwd": passwd,
        "etc/decoy": passwd,
        RECORD: "".join(f"{sha(passwd)} {path}\n" for path in sorted(hostile)).encode(),
    }
    for path, data in files.items():
        (staging / path).write_bytes(data)
        spec.append(f"./{path} type=file uid=0 gid=0 mode=0644")
    for path, target in (("etc/evil", "passwd"), ("var/linked", "../etc")):
        (staging / path).symlink_to(target)
        spec.append(f"./{path} type=link uid=0 gid=0 mode=0777 link={target}")
    (tmp_path / "spec").write_text("\n".join(spec) + "\n")
    image = tmp_path / "local.img"
    subprocess.run(
        ["makefs", "-t", "ffs", "-o", "version=1", "-s", "4m", "-F", str(tmp_path / "spec"),
         str(image), str(staging)],
        check=True, capture_output=True,
    )  # fmt: skip
    with opened(image, keep_images=0) as ffs:
        parsed = recorded(ffs.current(RECORD), str(image))
        assert parsed is not None and "an absolute path" in parsed.warnings[0]
        retired = retirement(ffs, parsed, [])
        assert [change.path for change in retired.removals] == ["etc/decoy"]
        assert retired.kept == ["etc/evil", "etc/rc.d", "var/linked/passwd"]
        ffs.apply(retired.removals, "20261207T000000", 5)
    after = ImageReader(image, "ffs")
    assert "etc/decoy" not in after.paths()
    assert after.read("etc/decoy.domus-20261207T000000") == passwd
    assert after.read("etc/passwd") == passwd
    assert after.stat("etc/evil").type == after.stat("var/linked").type == "link"
    assert after.stat("etc/rc.d").type == "dir"
    assert_netbsd_accepts(image, "ffs")
