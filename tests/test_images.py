"""Image writers: contents fit or fail clearly, images are sparse, publishing is atomic."""

import os

import pytest

from tasks.images.publish import partial_name, publishing
from tasks.images.tree import Tree
from tasks.images.writers import write_image
from tasks.run.errors import DomusError
from tests.image_reader import ImageReader


@pytest.fixture
def small_tree(tmp_path) -> Tree:
    tree = Tree.empty(tmp_path / "stage")
    tree.mkdir("etc")
    tree.write_text("etc/secret", "s\n", mode=0o600, uid=12, gid=34)
    tree.write_bytes("data", os.urandom(300_000))
    return tree


@pytest.mark.parametrize("fs", ["ffs", "ext2fs"])
def test_too_small_says_which_size_to_raise(small_tree, tmp_path, fs):
    with pytest.raises(DomusError) as info:
        write_image(small_tree, fs, 256 << 10, tmp_path / "x.img")
    assert "do not fit in 256k" in str(info.value)
    assert "raise the image's `size`" in str(info.value)


@pytest.mark.parametrize("fs", ["ffs", "ext2fs"])
def test_images_are_sparse_and_exact(small_tree, tmp_path, fs):
    image = tmp_path / "x.img"
    write_image(small_tree, fs, 32 << 20, image)
    assert image.stat().st_size == 32 << 20
    assert image.stat().st_blocks * 512 < 8 << 20  # allocated: the empty space is holes
    reader = ImageReader(image, fs)
    assert reader.read("data") == small_tree.host_path("data").read_bytes()
    secret = reader.stat("etc/secret")
    assert (secret.mode, secret.uid, secret.gid) == (0o600, 12, 34)


def test_publishing_keeps_the_old_image_when_the_build_fails(tmp_path):
    final = tmp_path / "root.img"
    final.write_text("old")
    with pytest.raises(RuntimeError), publishing(final) as partial:
        partial.write_text("half")
        raise RuntimeError("killed")
    assert final.read_text() == "old"
    assert not partial_name(final).exists()


def test_publishing_replaces_on_success(tmp_path):
    final = tmp_path / "sub" / "root.img"
    with publishing(final) as partial:
        assert partial.parent == final.parent
        partial.write_text("new")
    assert final.read_text() == "new"
    assert list(final.parent.iterdir()) == [final]
