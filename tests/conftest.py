from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
NETBSD = SHARED / "netbsd-fixtures" / "etc"


@pytest.fixture
def netbsd_file():
    """Text of a real NetBSD file from ../shared/netbsd-fixtures/etc (read, never copied)."""

    def read(relpath: str) -> str:
        return (NETBSD / relpath).read_text()

    return read
