"""The pure parts of converging: which managed files change, the diff, the safe reads."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tasks.converge.mounted import MountedFiles
from tasks.converge.plan import Change, FileState, backup_name, plan, unified_diff
from tasks.formats.superblocks import detect_fs
from tasks.kinds.local import context as local_context
from tasks.recipes.local import ManagedFile, managed_files
from tasks.render import Templates
from tasks.run.errors import DomusError
from tasks.site import load_site
from tests.conftest import REPO

TEMPLATE = ManagedFile("etc/fstab", "new\n", 0o644)


def example_context() -> dict[str, object]:
    site = load_site(REPO / "config" / "site.yaml")
    return local_context(site, site.domus[0])


RC_CONF = ManagedFile("etc/rc.conf", "a=1\n", None)


def state(data: bytes, mode: int = 0o644, uid: int = 0, gid: int = 0) -> FileState:
    return FileState(data, mode, uid, gid)


def test_only_files_that_differ_change():
    current = {"etc/fstab": state(b"new\n"), "etc/rc.conf": state(b"a=1\n", 0o640, 0, 5)}
    assert plan([TEMPLATE, RC_CONF], current) == []


def test_a_template_gets_its_mode_and_root_owner_and_rc_conf_keeps_its_own():
    current = {
        "etc/fstab": state(b"new\n", 0o666, 1000, 1000),
        "etc/rc.conf": state(b"a=0\n", 0o640, 0, 5),
    }
    assert plan([TEMPLATE, RC_CONF], current) == [
        Change("etc/fstab", current["etc/fstab"], state(b"new\n")),
        Change("etc/rc.conf", current["etc/rc.conf"], state(b"a=1\n", 0o640, 0, 5)),
    ]


def test_a_missing_file_is_created():
    assert plan([RC_CONF], {"etc/rc.conf": None}) == [Change("etc/rc.conf", None, state(b"a=1\n"))]


def test_diff_of_a_metadata_change_a_new_file_and_a_missing_final_newline():
    mode_only = Change("etc/fstab", state(b"x\n", 0o600, 1, 1), state(b"x\n"))
    assert unified_diff(mode_only, "www1") == (
        "# www1:/etc/fstab: mode 0600 -> 0644\n# www1:/etc/fstab: owner 1:1 -> 0:0\n"
    )
    new = Change("etc/motd", None, state(b"hi\n"))
    assert unified_diff(new, "www1") == (
        "# www1:/etc/motd: new file, mode 0644, owner 0:0\n"
        "--- /dev/null\n+++ www1:/etc/motd\t(converged)\n@@ -0,0 +1 @@\n+hi\n"
    )
    unterminated = Change("etc/rc.conf", state(b"a=0"), state(b"a=0\nb=1\n"))
    assert unified_diff(unterminated, "db1") == (
        "--- db1:/etc/rc.conf\t(in the image)\n+++ db1:/etc/rc.conf\t(converged)\n"
        "@@ -1 +1,2 @@\n-a=0\n\\ No newline at end of file\n+a=0\n+b=1\n"
    )


def test_backup_names_are_dated_and_never_reused():
    assert backup_name("fstab", "20250101T120000", set()) == "fstab.domus-20250101T120000"
    taken = {"fstab.domus-20250101T120000", "fstab.domus-20250101T120000.2"}
    assert backup_name("fstab", "20250101T120000", taken) == "fstab.domus-20250101T120000.3"


def test_managed_files_edit_the_images_own_rc_conf(tmp_path):
    templates = Templates(None)
    files = {
        f.path: f
        for f in managed_files(
            templates, example_context(), {"sshd": "NO"}, "sshd=YES  # mine\nnamed=YES\n"
        )
    }
    assert files["etc/rc.conf"].text == "sshd=NO  # mine\nnamed=YES\n"
    assert files["etc/rc.conf"].mode is None
    assert files["etc/fstab"].text.startswith("# /etc/fstab of www1")
    assert set(files) == {*templates.names("local"), "etc/rc.conf"}


def test_links_in_the_image_are_never_followed(tmp_path):
    outside = tmp_path / "dom0-etc"
    outside.mkdir()
    (outside / "fstab").write_text("the dom0's own\n")
    image = tmp_path / "image"
    image.mkdir()
    (image / "etc").symlink_to(outside)
    with pytest.raises(DomusError, match="/etc in the image is not a directory"):
        MountedFiles(image).current("etc/fstab")
    (image / "etc").unlink()
    (image / "etc").mkdir()
    (image / "etc" / "fstab").symlink_to(outside / "fstab")
    with pytest.raises(DomusError, match="/etc/fstab in the image is not a regular file"):
        MountedFiles(image).current("etc/fstab")
    assert MountedFiles(image).current("etc/rc.conf") is None
    assert MountedFiles(image).current("var/missing/file") is None


def test_detect_fs(tmp_path):
    ext2, ffs, empty = tmp_path / "ext2.img", tmp_path / "ffs.img", tmp_path / "empty.img"
    for image in (ext2, ffs, empty):
        image.write_bytes(bytes(1 << 20))
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext2", str(ext2)], check=True)
    tree = tmp_path / "tree"
    tree.mkdir()
    os.remove(ffs)
    subprocess.run(
        ["makefs", "-t", "ffs", "-s", "1m", str(ffs), str(tree)], check=True, capture_output=True
    )
    assert (detect_fs(ext2), detect_fs(ffs), detect_fs(empty)) == ("ext2fs", "ffs", None)


def test_templates_without_rc_conf_leave_no_image_path_unmanaged(tmp_path: Path):
    site_templates = tmp_path / "templates" / "local" / "etc"
    site_templates.mkdir(parents=True)
    (site_templates / "rc.conf").write_text("# site rc.conf for {{ name }}\nsshd=YES\n")
    templates = Templates(tmp_path / "templates")
    files = {
        f.path: f for f in managed_files(templates, example_context(), {"sshd": "NO"}, "other\n")
    }
    # a site template of rc.conf is rendered, then edited: the image's own is not used
    assert files["etc/rc.conf"].text == "# site rc.conf for www1\nsshd=NO\n"
    assert files["etc/rc.conf"].mode == 0o644
