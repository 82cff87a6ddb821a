"""An encrypted image read as its plaintext, sector by sector, with nothing written.

cgd encrypts each 512-byte sector on its own (its IV comes from the sector number), so any
byte range of the plain disk is the decryption of the sectors that hold it. DecryptedImage
is a seekable binary file over an encrypted image that decrypts just the sectors a read
touches: a reader of the file system (tasks/images/ffs_reader.py) walks the encrypted
image directly, and no plaintext copy exists anywhere, not even for a moment.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from tasks.cgd.ciphers import SECTOR_SIZE
from tasks.cgd.stream import KeySource, cipher_for


class DecryptedImage(io.RawIOBase):
    def __init__(self, image: Path, source: KeySource, passphrase: bytes | None = None) -> None:
        super().__init__()
        self.name = str(image)
        self._cipher = cipher_for(source, passphrase)
        self._file = open(image, "rb")  # noqa: SIM115 - closed by close()
        self._size = os.fstat(self._file.fileno()).st_size
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._position = base + offset
        return self._position

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        view = memoryview(buffer).cast("B")
        start = self._position
        stop = min(start + len(view), self._size)
        if stop <= start:
            return 0
        first = start // SECTOR_SIZE
        self._file.seek(first * SECTOR_SIZE)
        sealed = self._file.read(-(-stop // SECTOR_SIZE) * SECTOR_SIZE - first * SECTOR_SIZE)
        sealed = sealed[: len(sealed) - len(sealed) % SECTOR_SIZE]
        plain = self._cipher.decrypt(sealed, first)
        skip = start - first * SECTOR_SIZE
        count = min(stop - start, len(plain) - skip)
        view[:count] = plain[skip : skip + count]
        self._position += count
        return count

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()


def open_decrypted(
    image: Path, source: KeySource, passphrase: bytes | None = None
) -> io.BufferedReader:
    """The plaintext of `image`, to read and seek in like a file."""
    return io.BufferedReader(DecryptedImage(image, source, passphrase), buffer_size=1 << 16)
