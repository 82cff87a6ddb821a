"""Berkeley DB 1.85 files read and written by the real db code, through ctypes.

The judge of tasks/formats/btree_db.py: NetBSD's dbopen(3) is in its libc; on Linux the same 4.4BSD
code is Debian's libdb1-compat (libdb1.so.2), which `./domus test` installs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

R_FIRST, R_NEXT, R_NOOVERWRITE = 3, 7, 8  # db.h
R_DUP = 0x01  # BTREEINFO.flags: duplicate keys allowed
DB_BTREE = 0


class DBT(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("size", ctypes.c_size_t)]


class DB(ctypes.Structure):
    pass


class BTREEINFO(ctypes.Structure):
    _fields_ = [
        ("flags", ctypes.c_ulong),
        ("cachesize", ctypes.c_uint),
        ("maxkeypage", ctypes.c_int),
        ("minkeypage", ctypes.c_int),
        ("psize", ctypes.c_uint),
        ("compare", ctypes.c_void_p),
        ("prefix", ctypes.c_void_p),
        ("lorder", ctypes.c_int),
    ]


def pkgdb_info(flags: int = 0) -> BTREEINFO:
    """What pkg_install's pkgdb_open (lib/pkgdb.c) passes to dbopen; `flags` 0 as it does."""
    return BTREEINFO(flags=flags, cachesize=2 * 1024 * 1024, psize=4096)


_DBP = ctypes.POINTER(DB)
_DBTP = ctypes.POINTER(DBT)
DB._fields_ = [
    ("type", ctypes.c_int),
    ("close", ctypes.CFUNCTYPE(ctypes.c_int, _DBP)),
    ("delete", ctypes.CFUNCTYPE(ctypes.c_int, _DBP, _DBTP, ctypes.c_uint)),
    ("get", ctypes.CFUNCTYPE(ctypes.c_int, _DBP, _DBTP, _DBTP, ctypes.c_uint)),
    ("put", ctypes.CFUNCTYPE(ctypes.c_int, _DBP, _DBTP, _DBTP, ctypes.c_uint)),
    ("seq", ctypes.CFUNCTYPE(ctypes.c_int, _DBP, _DBTP, _DBTP, ctypes.c_uint)),
    ("sync", ctypes.CFUNCTYPE(ctypes.c_int, _DBP, ctypes.c_uint)),
    ("internal", ctypes.c_void_p),
    ("fd", ctypes.CFUNCTYPE(ctypes.c_int, _DBP)),
]


@functools.cache
def libdb() -> ctypes.CDLL:
    name = ctypes.util.find_library("c") if sys.platform.startswith("netbsd") else "libdb1.so.2"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError as error:
        pytest.fail(
            f"no db 1.85 library to check B-tree files with ({error}); "
            "install Debian's libdb1-compat (./domus test does)"
        )
    lib.dbopen.restype = _DBP
    lib.dbopen.argtypes = [
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_void_p,
    ]
    return lib


def _dbt(data: bytes) -> DBT:
    buffer = ctypes.create_string_buffer(data, len(data))
    dbt = DBT(ctypes.cast(buffer, ctypes.c_void_p), len(data))
    dbt._keep = buffer  # type: ignore[attr-defined]
    return dbt


def _bytes(dbt: DBT) -> bytes:
    return ctypes.string_at(dbt.data, dbt.size)


class Database:
    def __init__(self, db: ctypes._Pointer) -> None:  # type: ignore[type-arg]
        self.db = db

    def records(self) -> list[tuple[bytes, bytes]]:
        """Every record in key order, by the cursor (leaf pages through their links)."""
        out = []
        key, data = DBT(), DBT()
        flag = R_FIRST
        while (status := self.db.contents.seq(self.db, key, data, flag)) == 0:
            out.append((_bytes(key), _bytes(data)))
            flag = R_NEXT
        assert status == 1, f"seq failed: {status}"
        return out

    def get(self, key: bytes) -> bytes | None:
        """One record, by a search from the root."""
        data = DBT()
        status = self.db.contents.get(self.db, _dbt(key), data, 0)
        assert status in (0, 1), f"get failed: {status}"
        return _bytes(data) if status == 0 else None

    def put(self, key: bytes, data: bytes) -> int:
        return self.db.contents.put(self.db, _dbt(key), _dbt(data), R_NOOVERWRITE)


@contextmanager
def _opened(path: Path, flags: int, info: BTREEINFO | None) -> Iterator[Database]:
    where = ctypes.byref(info) if info is not None else None
    db = libdb().dbopen(str(path).encode(), flags, 0o644, DB_BTREE, where)
    if not db:
        raise OSError(ctypes.get_errno(), f"dbopen {path} failed")
    try:
        yield Database(db)
    finally:
        assert db.contents.close(db) == 0


def dbopen(path: Path, writable: bool = False) -> AbstractContextManager[Database]:
    return _opened(path, os.O_RDWR if writable else os.O_RDONLY, None)


def dbcreate(path: Path, info: BTREEINFO | None) -> AbstractContextManager[Database]:
    """A new B-tree made by the real code, with `info` (None: dbopen's openinfo NULL)."""
    return _opened(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, info)
