"""Converging an encrypted local.img without cgd(4): domus's own decrypt and seal.

The image is decrypted into a private plain copy (tasks/images/plaintext.py: a 0700
directory beside the image, the file 0600 from its creation) and converged there: an
ext2fs one through debugfs, an FFS one rewritten through makefs (tasks/converge/rewrite.py,
staged in the same private directory). The result is encrypted again beside the image and
renamed over it. The plain copies are removed afterwards whatever happens; a killed run's
are removed by the next command of any kind.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tasks.cgd.params import Params
from tasks.cgd.stream import decrypt_file, encrypt_file
from tasks.converge.debugfs import DebugfsFiles
from tasks.converge.plan import Change, FileState
from tasks.converge.rewrite import RewriteFiles, check_rewritable
from tasks.formats.superblocks import detect_fs
from tasks.images.ffs_reader import FfsImage
from tasks.images.plaintext import private_dir
from tasks.images.publish import publishing
from tasks.images.working_copy import require_room
from tasks.run.errors import DomusError


class SealedFiles:
    def __init__(self, image: Path, plain: Path, params: Params, passphrase: bytes | None) -> None:
        self.image, self.plain = image, plain
        self.params, self.passphrase = params, passphrase
        # the plain copy is private and thrown away on failure: debugfs writes it directly
        self.files = DebugfsFiles(plain, in_place=True)

    @property
    def pruned(self) -> list[str]:
        return self.files.pruned

    @property
    def directory_flags(self) -> dict[str, int]:
        return self.files.directory_flags

    @property
    def max_file_size(self) -> int:
        return self.files.max_file_size

    @max_file_size.setter
    def max_file_size(self, size: int) -> None:
        self.files.max_file_size = size

    def read_all(self, paths: Sequence[str]) -> dict[str, FileState | None]:
        return self.files.read_all(paths)

    def missing_dirs(self, paths: Sequence[str]) -> set[str]:
        return self.files.missing_dirs(paths)

    def room(self) -> tuple[int, int]:
        return self.files.room()

    def apply(self, changes: Sequence[Change], stamp: str, keep: int) -> list[str]:
        backups = self.files.apply(changes, stamp, keep)
        with publishing(self.image) as partial:
            encrypt_file(self.params, self.plain, partial, passphrase=self.passphrase)
        return backups


@contextmanager
def opened(
    image: Path, params: Params, passphrase: bytes | None, fs: str, keep_images: int = 1
) -> Iterator[SealedFiles | RewriteFiles]:
    """The files of the encrypted `image`, whose file system is `fs` (local.fs)."""
    size = image.stat().st_size
    # the plaintext and the sealed copy are written whole before the image is replaced
    require_room(image.parent, 2 * size, f"converging the encrypted {image}")
    with private_dir(image) as private:
        plain = private / "plain.img"
        decrypt_file(params, image, plain, passphrase=passphrase)
        if detect_fs(plain) != fs:
            raise DomusError(
                f"{image} does not decrypt to an {fs} file system with its key: "
                "wrong key, or not the image the key was made for",
                hint="check the key directory (keys:) and local.cipher",
            )
        if fs == "ext2fs":
            yield SealedFiles(image, plain, params, passphrase)
            return

        def seal(new: Path, partial: Path) -> None:
            encrypt_file(params, new, partial, passphrase=passphrase)

        with FfsImage(plain) as reader:
            check_rewritable(image, reader)
            yield RewriteFiles(image, reader, keep_images=keep_images, private=private, seal=seal)
