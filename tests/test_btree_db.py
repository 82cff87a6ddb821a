"""Berkeley DB 1.85 B-tree files (tasks/formats/btree_db.py), judged by the real db code."""

import random
import struct

import pytest
from dbopen import R_DUP, dbcreate, dbopen, pkgdb_info

from tasks.formats.btree_db import B_NODUPS, MAGIC, PAGE_SIZE, overflow_size, write_btree


def records(count, seed=0):
    """Records shaped like pkgdb.byfile.db's, in random order."""
    out = [
        (
            f"/usr/pkg/share/doc/pkg{i % 97}/file-{i:06d}.html\0".encode(),
            f"pkg{i % 97}-1.0\0".encode(),
        )
        for i in range(count)
    ]
    random.Random(seed).shuffle(out)
    return out


def written(tmp_path, items, name="test.db"):
    path = tmp_path / name
    path.write_bytes(write_btree(items))
    return path


@pytest.mark.parametrize("count", [0, 1, 60, 20_000])
def test_real_db_reads_every_record_by_cursor_and_by_search(tmp_path, count):
    # 60 records fill more than one leaf; 20,000 make a tree three levels deep.
    items = records(count)
    path = written(tmp_path, items)

    with dbopen(path) as db:
        assert db.records() == sorted(items)  # leaves linked in key order
        for key, data in items:  # every key found from the root down
            assert db.get(key) == data
        assert db.get(b"/usr/pkg/none\0") is None
        assert db.get(b"\0") is None  # before the first key
        assert db.get(b"\xff\0") is None  # after the last


def test_tree_has_the_levels_the_sizes_call_for(tmp_path):
    data = write_btree(records(20_000))
    root = data[PAGE_SIZE : 2 * PAGE_SIZE]
    pgno, prev, following, flags, lower, _ = struct.unpack_from("<IIIIHH", root)
    assert (pgno, prev, following, flags) == (1, 0, 0, 0x01)  # page 1, an internal page
    child = struct.unpack_from("<IIB", root, struct.unpack_from("<H", root, 20)[0])[1]
    below = data[child * PAGE_SIZE : (child + 1) * PAGE_SIZE]
    assert struct.unpack_from("<I", below, 12)[0] == 0x01  # internal again: three levels
    assert (lower - 20) // 2 > 1


def test_real_db_updates_the_file_in_place(tmp_path):
    # pkg_add and pkg_admin in a domU with a writable /usr/pkg insert into it: page splits
    # of pages written here, by the real code.
    items = records(5_000)
    path = written(tmp_path, items)
    added = records(5_000, seed=1)
    added = [(b"/usr/pkg/new" + key, data) for key, data in added]

    with dbopen(path, writable=True) as db:
        for key, data in added:
            assert db.put(key, data) == 0
        assert db.put(items[0][0], b"again\0") == 1  # no overwriting
    with dbopen(path) as db:
        assert db.records() == sorted(items + added)
        assert db.get(added[-1][0]) == added[-1][1]


def test_data_too_long_for_a_page_goes_to_overflow_pages(tmp_path):
    limit = overflow_size()
    assert limit == 2024  # bt_open with psize 4096 and minkeypage 2
    key = b"/usr/pkg/key\0"
    items = [
        (key, b"a" * (limit - len(key))),  # just fits on the leaf
        (b"/usr/pkg/kez\0", b"b" * (limit - len(key) + 1)),  # one overflow page
        (b"/usr/pkg/long\0", bytes(range(256)) * 40),  # a chain of three
        *records(300),
    ]
    path = written(tmp_path, items)

    with dbopen(path) as db:
        assert db.records() == sorted(items)
        assert db.get(b"/usr/pkg/long\0") == bytes(range(256)) * 40


def test_meta_page_is_little_endian_db_185(tmp_path):
    data = write_btree(records(10))
    # magic, version, psize, free list, nrecs, flags: B_NODUPS, as bt_open sets it on a tree
    # created with BTREEINFO.flags 0 (pkg_install's pkgdb_open)
    assert struct.unpack_from("<6I", data) == (MAGIC, 3, PAGE_SIZE, 0, 0, 0x20)
    assert data[24:PAGE_SIZE] == bytes(PAGE_SIZE - 24)
    assert len(data) % PAGE_SIZE == 0


@pytest.mark.parametrize("count", [1, 5_000])
def test_meta_page_is_the_one_the_real_db_writes_for_pkg_install(tmp_path, count):
    # The real code creates the tree as pkg_install's pkgdb_open does and puts the records as
    # pkgdb_store does; db's other pages carry whatever its memory held, its meta page not.
    items = records(count)
    real = tmp_path / "real.db"
    with dbcreate(real, pkgdb_info()) as db:
        for key, data in items:
            assert db.put(key, data) == 0

    assert write_btree(items)[:PAGE_SIZE] == real.read_bytes()[:PAGE_SIZE]


@pytest.mark.parametrize(
    ("info", "flags"),
    [(None, B_NODUPS), (pkgdb_info(), B_NODUPS), (pkgdb_info(R_DUP), 0)],
    ids=["openinfo NULL", "flags 0", "R_DUP"],
)
def test_only_r_dup_clears_b_nodups_in_a_new_tree(tmp_path, info, flags):
    path = tmp_path / "new.db"
    with dbcreate(path, info) as db:
        db.put(b"/usr/pkg/bin/a\0", b"a-1.0\0")  # db writes nothing for a tree left empty

    assert struct.unpack_from("<I", path.read_bytes(), 20)[0] == flags


def test_same_records_same_bytes_in_any_order():
    # Free space is zeros, not whatever memory held: the image is reproducible and carries
    # nothing of the building process.
    assert write_btree(records(3_000, seed=1)) == write_btree(records(3_000, seed=2))


def test_duplicate_key_is_refused():
    with pytest.raises(ValueError, match="duplicate key"):
        write_btree([(b"a\0", b"1\0"), (b"a\0", b"2\0")])


def test_items_are_aligned_as_db_aligns_them():
    # BTLALIGN: db reads an item's numbers in place, which strict-alignment CPUs require.
    data = write_btree(records(500))
    for start in range(PAGE_SIZE, len(data), PAGE_SIZE):
        lower, upper = struct.unpack_from("<HH", data, start + 16)
        offsets = struct.unpack_from(f"<{(lower - 20) // 2}H", data, start + 20)
        assert offsets
        assert all(offset % 4 == 0 for offset in (*offsets, upper))
