"""Converging an encrypted ext2fs local.img without cgd(4): domus's own decrypt and seal.

The image is decrypted into a private plain copy beside it (mode 0600), converged there
through debugfs like any ext2fs image, encrypted again and renamed over the image. The
plain copy is removed afterwards whatever happens, and a leftover of a killed run is
removed before the next one starts.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tasks.cgd.params import Params
from tasks.cgd.stream import decrypt_file, encrypt_file
from tasks.converge.debugfs import DebugfsFiles
from tasks.converge.plan import Change, FileState
from tasks.errors import DomusError
from tasks.images.publish import publishing
from tasks.superblocks import detect_fs


def plain_copy(image: Path) -> Path:
    return image.with_name(f".{image.name}.plain")


class SealedFiles:
    def __init__(self, image: Path, plain: Path, params: Params, passphrase: bytes | None) -> None:
        self.image, self.plain = image, plain
        self.params, self.passphrase = params, passphrase
        self.files = DebugfsFiles(plain)

    def read_all(self, paths: Sequence[str]) -> dict[str, FileState | None]:
        return self.files.read_all(paths)

    def apply(self, changes: Sequence[Change], stamp: str) -> list[str]:
        backups = self.files.apply(changes, stamp)
        with publishing(self.image) as partial:
            encrypt_file(self.params, self.plain, partial, passphrase=self.passphrase)
        return backups


@contextmanager
def opened(image: Path, params: Params, passphrase: bytes | None) -> Iterator[SealedFiles]:
    plain = plain_copy(image)
    plain.unlink(missing_ok=True)
    old_umask = os.umask(0o077)
    try:
        decrypt_file(params, image, plain, passphrase=passphrase)
        if detect_fs(plain) != "ext2fs":
            raise DomusError(
                f"{image} does not decrypt to an ext2fs file system with its key: "
                "wrong key, or not the image the key was made for",
                hint="check the key directory (keys:) and local.cipher",
            )
        yield SealedFiles(image, plain, params, passphrase)
    finally:
        os.umask(old_umask)
        plain.unlink(missing_ok=True)
