"""The mtree spec the manifest becomes, checked by makefs itself and The Sleuth Kit."""

from pathlib import Path

from tasks.formats.mtree import decode, encode, parse_metalog, spec_line
from tasks.images.ffs import write_ffs
from tasks.images.tree import Entry, Tree
from tests.image_reader import ImageReader


def test_encoding_round_trips_odd_names():
    for name in ["plain/name.txt", "with space", "tab\there", "hash#x", "star*", "ünï"]:
        assert decode(encode(name)) == name
    assert encode("with space") == "with\\040space"


def test_spec_lines():
    assert spec_line(".", Entry("dir", 0o755)) == ". type=dir uid=0 gid=0 mode=0755"
    assert (
        spec_line("usr/bin/sh", Entry("link", 0o755, 0, 0, "/bin/sh"))
        == "./usr/bin/sh type=link uid=0 gid=0 mode=0755 link=/bin/sh"
    )
    assert spec_line("tmp", Entry("dir", 0o1777)) == "./tmp type=dir uid=0 gid=0 mode=1777"


def test_metalog_set_unset_and_continuation():
    text = "/set uname=root mode=0644\n./a type=file\n/unset mode\n./b type=file \\\n gid=3\n"
    parsed = parse_metalog(text, Path("M"))
    assert parsed["a"] == (2, {"uname": "root", "mode": "0644", "type": "file"})
    assert parsed["b"] == (4, {"uname": "root", "type": "file", "gid": "3"})


def test_makefs_reads_our_spec_for_odd_names(tmp_path):
    tree = Tree.empty(tmp_path / "stage")
    tree.mkdir("dir with space", 0o700, 3, 4)
    tree.write_text("dir with space/file#1", "content\n", mode=0o640, uid=1000, gid=100)
    tree.symlink("link to", "dir with space/file#1")
    image = tmp_path / "x.img"
    write_ffs(tree, 4 << 20, image)
    reader = ImageReader(image, "ffs")
    assert reader.paths() == {"dir with space", "dir with space/file#1", "link to"}
    inode = reader.stat("dir with space/file#1")
    assert (inode.mode, inode.uid, inode.gid) == (0o640, 1000, 100)
    assert reader.text("dir with space/file#1") == "content\n"
    assert reader.stat("link to").link == "dir with space/file#1"
    assert reader.stat("dir with space").mode == 0o700
