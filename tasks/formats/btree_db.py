"""Berkeley DB 1.85 B-tree files, as NetBSD's dbopen(3) (lib/libc/db/btree) lays them out.

pkg_install keeps its file-to-package index, pkgdb.byfile.db, in one. domus knows every record
when it writes the file, so it builds the tree bottom-up from the sorted keys instead of
inserting them one at a time: full leaves linked left to right, internal pages over them, the
top one on page 1 (dbopen's root is always page 1; page 0 holds the meta data). dbopen reads and
updates such a tree as one it wrote itself.

Written here rather than through a C library: the same records always give the same bytes,
with zeros in each page's free space (db's own pages carry whatever was in its memory), and the
build needs no libdb1 on Linux nor anything else on a NetBSD dom0.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterable

MAGIC = 0x053162  # BTREEMAGIC
VERSION = 3  # BTREEVERSION
PAGE_SIZE = 4096  # the psize pkg_install asks for (lib/pkgdb.c, pkgdb_open)
# db writes its numbers in the byte order the file was made with (the meta page tells a reader
# which). NetBSD's Xen domUs (amd64, i386, aarch64) are little-endian.
ORDER = "<"

_HEADER = struct.Struct(ORDER + "IIIIHH")  # pgno, prevpg, nextpg, flags, lower, upper
DATA_OFFSET = _HEADER.size  # BTDATAOFF
_META = struct.Struct(ORDER + "IIIIII")  # magic, version, psize, free, nrecs, flags
_LEAF = struct.Struct(ORDER + "IIB")  # ksize, dsize, flags; then key and data
_INTERNAL = struct.Struct(ORDER + "IIB")  # ksize, pgno, flags; then key
_OVERFLOW_REF = struct.Struct(ORDER + "II")  # first overflow page, size of the item
_INDEX = struct.Struct(ORDER + "H")  # indx_t, one per item after the header

P_BINTERNAL, P_BLEAF, P_OVERFLOW = 0x01, 0x02, 0x04  # page types
P_BIGDATA = 0x01  # the leaf item's data is on overflow pages
P_INVALID = 0  # "no page": the meta page's number
P_ROOT = 1
# The one tree flag kept in the meta page: bt_open sets it on every new tree unless asked for
# duplicates (R_DUP); pkg_install's pkgdb_open asks with flags 0.
B_NODUPS = 0x20


def _align(size: int) -> int:
    return (size + 3) & ~3  # BTLALIGN: items start on pgno_t boundaries


def overflow_size(page_size: int = PAGE_SIZE) -> int:
    """bt_ovflsize: a key and data longer than this together move the data to overflow pages.
    bt_open's formula, with the default of at least two keys on a page."""
    return (page_size - DATA_OFFSET) // 2 - (_INDEX.size + _align(_LEAF.size))


def _fill(sizes: Iterable[int], page_size: int) -> list[int]:
    """Split items of these sizes into pages, each as full as it can be: the item counts."""
    counts: list[int] = []
    room = 0
    for size in sizes:
        cost = _align(size) + _INDEX.size
        if not counts or cost > room:
            counts.append(0)
            room = page_size - DATA_OFFSET
        counts[-1] += 1
        room -= cost
    return counts or [0]


def _split(items: list, counts: list[int]) -> list[list]:
    groups, start = [], 0
    for count in counts:
        groups.append(items[start : start + count])
        start += count
    return groups


def _page(
    pgno: int, prev: int, next_: int, flags: int, items: list[bytes], page_size: int
) -> bytes:
    """A tree page: header, index, and the items from the end of the page down, the first
    item highest, as db places items appended in key order."""
    page = bytearray(page_size)
    upper = page_size
    for index, item in enumerate(items):
        upper -= _align(len(item))
        page[upper : upper + len(item)] = item
        _INDEX.pack_into(page, DATA_OFFSET + index * _INDEX.size, upper)
    lower = DATA_OFFSET + len(items) * _INDEX.size
    _HEADER.pack_into(page, 0, pgno, prev, next_, flags, lower, upper)
    return bytes(page)


def write_btree(records: Iterable[tuple[bytes, bytes]], page_size: int = PAGE_SIZE) -> bytes:
    """The bytes of a db 1.85 B-tree file (no duplicate keys, memcmp order) with `records`."""
    records = sorted(records)
    for (key, _), (after, _) in itertools.pairwise(records):
        if key == after:
            raise ValueError(f"duplicate key {key!r}")
    limit = overflow_size(page_size)
    overflow: list[bytes] = []  # data moved to overflow pages
    items: list[tuple[bytes, bytes | int]] = []  # key, then data or its index in `overflow`
    for key, data in records:
        if len(key) > limit:  # db would move the key too; pkg_install never stores one
            raise ValueError(f"key of {len(key)} bytes: at most {limit} fit on a page")
        if len(key) + len(data) > limit:
            items.append((key, len(overflow)))
            overflow.append(data)
        else:
            items.append((key, data))

    pages: dict[int, bytes] = {}
    next_pgno = P_ROOT + 1

    def number(count: int) -> list[int]:
        """Page numbers for one level of the tree: the root's if it is the top one."""
        nonlocal next_pgno
        if count == 1:
            return [P_ROOT]
        next_pgno += count
        return list(range(next_pgno - count, next_pgno))

    def sizes(entries: list[tuple[bytes, bytes | int]]) -> list[int]:
        return [
            _LEAF.size + len(k) + (_OVERFLOW_REF.size if isinstance(d, int) else len(d))
            for k, d in entries
        ]

    leaves = _split(items, _fill(sizes(items), page_size))
    leaf_pgnos = number(len(leaves))
    # Each level: per page, the smallest key below it and its number.
    level = [
        (leaf[0][0] if leaf else b"", pgno) for leaf, pgno in zip(leaves, leaf_pgnos, strict=True)
    ]
    internal_levels: list[tuple[list[int], list[list[tuple[bytes, int]]]]] = []
    while len(level) > 1:
        # The first key of a level's leftmost page is never compared (__bt_cmp); db stores
        # it empty.
        children = [(b"", level[0][1]), *level[1:]]
        groups = _split(children, _fill((_INTERNAL.size + len(k) for k, _ in children), page_size))
        pgnos = number(len(groups))
        internal_levels.append((pgnos, groups))
        firsts = _split([key for key, _ in level], [len(g) for g in groups])
        level = [(keys[0], pgno) for keys, pgno in zip(firsts, pgnos, strict=True)]

    overflow_pgnos = []
    chunk = page_size - DATA_OFFSET
    for data in overflow:
        pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)]
        overflow_pgnos.append(next_pgno)
        for index, piece in enumerate(pieces):
            pgno = next_pgno + index
            following = pgno + 1 if index + 1 < len(pieces) else P_INVALID
            page = bytearray(page_size)
            _HEADER.pack_into(page, 0, pgno, P_INVALID, following, P_OVERFLOW, 0, 0)
            page[DATA_OFFSET : DATA_OFFSET + len(piece)] = piece
            pages[pgno] = bytes(page)
        next_pgno += len(pieces)

    def leaf_item(key: bytes, data: bytes | int) -> bytes:
        if isinstance(data, int):
            ref = _OVERFLOW_REF.pack(overflow_pgnos[data], len(overflow[data]))
            return _LEAF.pack(len(key), len(ref), P_BIGDATA) + key + ref
        return _LEAF.pack(len(key), len(data), 0) + key + data

    levels = [(leaf_pgnos, P_BLEAF, [[leaf_item(k, d) for k, d in leaf] for leaf in leaves])]
    levels += [
        (pgnos, P_BINTERNAL, [[_INTERNAL.pack(len(k), c, 0) + k for k, c in g] for g in groups])
        for pgnos, groups in internal_levels
    ]
    for pgnos, kind, contents in levels:  # the pages of a level are linked left to right
        for index, (pgno, page_items) in enumerate(zip(pgnos, contents, strict=True)):
            prev = pgnos[index - 1] if index > 0 else P_INVALID
            following = pgnos[index + 1] if index + 1 < len(pgnos) else P_INVALID
            pages[pgno] = _page(pgno, prev, following, kind, page_items, page_size)

    meta = bytearray(page_size)
    _META.pack_into(meta, 0, MAGIC, VERSION, page_size, P_INVALID, 0, B_NODUPS)
    pages[0] = bytes(meta)
    return b"".join(pages[pgno] for pgno in range(next_pgno))
