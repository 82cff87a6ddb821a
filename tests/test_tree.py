"""The Tree: staged content, manifest metadata, and a source that is never written."""

from pathlib import Path

import pytest

from tasks.images.tree import Entry, Tree, normalize
from tasks.run.errors import DomusError
from tasks.sources.directory import load_tree
from tests.conftest import assert_staged


def make_source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "etc").mkdir(parents=True)
    (src / "etc" / "rc").write_text("original\n")
    (src / "bin").mkdir()
    (src / "bin" / "sh").write_text("shell\n")
    (src / "bin" / "sh").chmod(0o555)
    (src / "bin" / "link").symlink_to("sh")
    return src


def test_normalize_refuses_to_leave_the_tree():
    assert normalize("./etc//rc") == "etc/rc"
    assert normalize("/") == "."
    with pytest.raises(DomusError, match="leaves the tree"):
        normalize("etc/../../x")


def test_editing_a_staged_file_never_writes_the_source(tmp_path):
    src = make_source(tmp_path)
    tree = load_tree(src, None, tmp_path / "stage")
    assert tree.host_path("etc/rc").stat().st_ino == (src / "etc" / "rc").stat().st_ino
    tree.replace_text("etc/rc", "changed\n")
    assert (src / "etc" / "rc").read_text() == "original\n"
    assert tree.read_text("etc/rc") == "changed\n"


def test_scan_takes_modes_links_and_gives_root_ownership(tmp_path):
    src = make_source(tmp_path)
    tree = load_tree(src, None, tmp_path / "stage")
    assert tree.entry("bin/sh").mode == 0o555
    assert tree.entry("bin/link") == Entry("link", 0o755, 0, 0, "sh")
    assert tree.entry("etc").type == "dir"


def test_metalog_sets_owners_by_name_and_creates_directories(tmp_path):
    src = make_source(tmp_path)
    (src / "etc" / "master.passwd").write_text("root:*:0:0::0:0::/:/bin/sh\nnews:*:9:13::0:0::/:\n")
    (src / "etc" / "group").write_text("wheel:*:0:\nnews:*:13:\n")
    metalog = tmp_path / "METALOG"
    metalog.write_text(
        "/set uname=root gname=wheel\n"
        "./var type=dir mode=0755\n"
        "./var/news type=dir uname=news gname=news mode=0775\n"
        "./etc/rc type=file mode=0644 \\\n  uid=3\n"
    )
    tree = load_tree(src, metalog, tmp_path / "stage")
    assert tree.entry("var/news") == Entry("dir", 0o775, 9, 13)
    assert tree.entry("etc/rc") == Entry("file", 0o644, 3, 0)
    assert tree.host_path("var/news").is_dir()


def test_metalog_naming_a_missing_file_is_an_error_with_its_line(tmp_path):
    src = make_source(tmp_path)
    metalog = tmp_path / "METALOG"
    metalog.write_text("# owners\n./etc/nothere type=file mode=0644\n")
    with pytest.raises(DomusError, match=r"METALOG:2: \./etc/nothere: no such file"):
        load_tree(src, metalog, tmp_path / "stage")


def test_metalog_with_an_unknown_user_names_it(tmp_path):
    src = make_source(tmp_path)
    metalog = tmp_path / "METALOG"
    metalog.write_text("./etc/rc type=file uname=nobody\n")
    with pytest.raises(DomusError, match="uname=nobody is not in the tree's own passwd"):
        load_tree(src, metalog, tmp_path / "stage")


def test_copy_from_and_remove(tmp_path):
    src = make_source(tmp_path)
    root = load_tree(src, None, tmp_path / "stage")
    local = Tree.empty(tmp_path / "local")
    local.copy_from(root, "etc")
    assert sorted(local.entries) == [".", "etc", "etc/rc"]
    local.remove("etc")
    assert sorted(local.entries) == ["."]
    assert not (tmp_path / "local" / "etc").exists()
    assert (src / "etc" / "rc").exists()


def test_hardlink_shares_the_inode(tmp_path):
    tree = Tree.empty(tmp_path / "t")
    tree.write_text("kernel", "k", mode=0o444)
    tree.hardlink("netbsd", "kernel")
    assert tree.host_path("netbsd").stat().st_ino == tree.host_path("kernel").stat().st_ino
    assert tree.entry("netbsd") == tree.entry("kernel")


def test_manifest_round_trip(tmp_path):
    tree = Tree.empty(tmp_path / "t")
    tree.mkdir("var", 0o755, 0, 0)
    tree.write_text("var/x", "x", mode=0o600, uid=5, gid=6)
    tree.save_manifest(tmp_path / "m.json")
    again = Tree.load(tmp_path / "t", tmp_path / "m.json")
    assert again.entries == tree.entries
    assert_staged(again)


def test_metalog_entries_beneath_a_symlink_of_the_tree_are_refused(tmp_path):
    src = make_source(tmp_path)
    host = tmp_path / "host"
    host.mkdir()
    (src / "etc" / "out").symlink_to(host)
    for line in ("./etc/out/d type=dir mode=0755", "./etc/out/l type=link link=/x"):
        metalog = tmp_path / "METALOG"
        metalog.write_text(f"./etc type=dir mode=0755\n{line}\n")
        with pytest.raises(DomusError, match=r"METALOG:2: \./etc/out/. lies beneath the symbol"):
            load_tree(src, metalog, tmp_path / "stage")
        assert list(host.iterdir()) == []


def test_nothing_is_staged_or_written_beneath_a_symlink(tmp_path):
    """A manifest holding a path beneath a link (an older cache, a hand-edited file) is
    never staged or written through the link."""
    host = tmp_path / "host"
    host.mkdir()
    source = tmp_path / "src"
    (source / "x").mkdir(parents=True)
    (source / "x" / "owned").write_text("owned\n")
    entries = {
        ".": Entry("dir", 0o755),
        "x": Entry("link", 0o755, link=str(host)),
        "x/owned": Entry("file", 0o644),
    }
    with pytest.raises(DomusError, match=r"\./x/owned: it lies beneath the symbolic link \./x"):
        Tree.stage(source, entries, tmp_path / "stage")
    tree = Tree.empty(tmp_path / "t")
    tree.symlink("x", str(host))
    tree.entries["x/d"] = Entry("dir", 0o755)
    for write in (
        lambda: tree.write_text("x/d/owned", "owned\n"),
        lambda: tree.mkdir("x/d/e"),
        lambda: tree.symlink("x/d/l", "/"),
        lambda: tree.add_file("x/d/f", source / "x" / "owned", 0o644),
    ):
        with pytest.raises(DomusError, match=r"cannot create /x/d/\w+: /x is not a directory"):
            write()
    assert list(host.iterdir()) == []


def test_nothing_is_read_or_removed_beneath_a_symlink(tmp_path):
    host = tmp_path / "host"
    host.mkdir()
    (host / "secret").write_text("hunter2\n")
    tree = Tree.empty(tmp_path / "t")
    tree.symlink("x", str(host))
    tree.entries["x/secret"] = Entry("file", 0o644)
    for use in (
        lambda: tree.read_text("x/secret"),
        lambda: tree.remove("x/secret"),
        lambda: tree.hardlink("stolen", "x/secret"),
        tree.file_bytes,
    ):
        with pytest.raises(DomusError, match=r"/x/secret lies beneath the symbolic link \./x"):
            use()
    assert (host / "secret").read_text() == "hunter2\n"
    assert "stolen" not in tree
