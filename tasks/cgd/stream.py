"""Whole images through cgd: the bytes cgd(4) would put on the parent disk, made off-host.

Images run to gigabytes, so files are streamed in chunks and never held in memory, and OUT
appears only once complete (written beside it, then renamed), so a failed run never leaves
something that looks like a finished image. Every sector is independent, so big inputs are
split over worker processes: the per-sector work done in Python and numpy, not the cipher,
is what limits one core.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from multiprocessing import get_context
from pathlib import Path
from typing import IO, BinaryIO

from tasks.cgd.ciphers import SECTOR_SIZE, BytesLike, SectorCipher, make_cipher
from tasks.cgd.params import Params, derive_key
from tasks.formats.superblocks import SBLOCKSEARCH, SBLOCKSIZE, has_ffs_superblock
from tasks.run.errors import DomusError
from tasks.run.progress import Progress

CHUNK_SIZE = 1 << 20
PARALLEL_MIN_BYTES = 32 << 20  # below this, starting workers costs more than it saves

# verify_method ffs reads a whole superblock at each offset NetBSD searches
VERIFY_HEAD_BYTES = max(SBLOCKSEARCH) + SBLOCKSIZE

KeySource = Params | SectorCipher


def encrypt_sectors(cipher: SectorCipher, data: BytesLike, first_sector: int) -> bytes | memoryview:
    """Encrypt whole sectors; `first_sector` is the cgd sector number of data[0:512]."""
    return cipher.encrypt(data, first_sector)


def decrypt_sectors(cipher: SectorCipher, data: BytesLike, first_sector: int) -> bytes | memoryview:
    """Decrypt whole sectors; `first_sector` is the cgd sector number of data[0:512]."""
    return cipher.decrypt(data, first_sector)


def cipher_for(source: KeySource, passphrase: bytes | None = None) -> SectorCipher:
    """The sector cipher for params (deriving the key) or an already built cipher."""
    if isinstance(source, SectorCipher):
        return source
    return make_cipher(source.algorithm, derive_key(source, passphrase), source.iv_method)


def encrypt_file(
    source: KeySource,
    src: Path,
    dst: Path,
    *,
    passphrase: bytes | None = None,
    chunk_size: int = CHUNK_SIZE,
    jobs: int | None = None,
) -> None:
    """Write to dst what cgd would store on disk for the plain image src.

    jobs: worker processes; None picks the usable CPUs for inputs of 32 MiB or more.
    """
    if isinstance(source, Params) and source.random_key:
        raise DomusError(
            "these params use randomkey/urandomkey: the key would be used once and lost, "
            "so the encrypted image could never be read",
            hint="encrypt images with storedkey or pkcs5_pbkdf2/sha1 params; "
            "swap with randomkey needs no pre-encrypted image",
        )
    _transform_file(source, src, dst, passphrase, chunk_size, jobs, encrypt=True)


def decrypt_file(
    source: KeySource,
    src: Path,
    dst: Path,
    *,
    passphrase: bytes | None = None,
    chunk_size: int = CHUNK_SIZE,
    jobs: int | None = None,
) -> None:
    """Write to dst the plain image that cgd would show for the encrypted image src."""
    if isinstance(source, Params) and source.random_key:
        raise DomusError(
            "these params use randomkey/urandomkey: the key was random and is gone, "
            "so nothing can decrypt this image",
            hint="randomkey suits swap only; an image needs storedkey or pkcs5_pbkdf2/sha1",
        )
    _transform_file(source, src, dst, passphrase, chunk_size, jobs, encrypt=False)


@contextmanager
def atomic_output(dst: Path) -> Iterator[IO[bytes]]:
    """A mode-0600 file beside dst that replaces dst only if the block exits cleanly.

    The file's .name is its path, for other processes to write into.
    """
    try:
        out = tempfile.NamedTemporaryFile(  # noqa: SIM115 - renamed or removed below
            prefix=f".{dst.name}.", suffix=".part", dir=dst.parent, delete=False
        )
    except OSError as e:
        raise DomusError(f"cannot write {dst}: {e.strerror}") from None
    tmp = Path(out.name)
    try:
        with out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _transform_file(
    source: KeySource,
    src: Path,
    dst: Path,
    passphrase: bytes | None,
    chunk_size: int,
    jobs: int | None,
    *,
    encrypt: bool,
) -> None:
    if chunk_size <= 0 or chunk_size % SECTOR_SIZE:
        raise DomusError(f"chunk size {chunk_size} is not a positive multiple of {SECTOR_SIZE}")
    with _open_input(src) as (inp, size):
        cipher = cipher_for(source, passphrase)
        if isinstance(source, Params) and source.verify_method == "ffs":
            _verify_head(cipher, inp, src, encrypt=encrypt)
        workers = _workers(jobs, size)
        label = f"encrypting {_shown(dst)}" if encrypt else f"decrypting {_shown(src)}"
        with atomic_output(dst) as out, Progress(label, size) as progress:
            if workers == 1:
                _transform_range(cipher, inp, out, src, 0, size, chunk_size, encrypt, progress)
            else:
                out.truncate(size)
                _transform_parallel(
                    cipher, src, Path(out.name), size, chunk_size, workers, encrypt, progress
                )


def _shown(image: Path) -> str:
    """The image an operator knows (`www1/local.img`), for the progress line: the
    encrypted one, though it is written as .local.img.partial."""
    name = image.name.removesuffix(".partial")
    if name != image.name:
        name = name.removeprefix(".")
    return f"{image.parent.name}/{name}"


@contextmanager
def _open_input(src: Path) -> Iterator[tuple[BinaryIO, int]]:
    """src opened for reading with its size, refusing sizes that are not whole sectors."""
    try:
        inp = open(src, "rb")  # noqa: SIM115 - closed below, after the caller's block
    except OSError as e:
        raise DomusError(f"cannot read {src}: {e.strerror}") from None
    with inp:
        size = inp.seek(0, os.SEEK_END)  # st_size is 0 for block devices
        inp.seek(0)
        if size % SECTOR_SIZE:
            raise DomusError(
                f"{src} is {size} bytes, not a whole number of {SECTOR_SIZE}-byte sectors",
                hint="cgd works on whole sectors; pad or truncate the image to a multiple of 512",
            )
        yield inp, size


def _verify_head(cipher: SectorCipher, inp: BinaryIO, src: Path, *, encrypt: bool) -> None:
    """Refuse work cgdconfig's verify_method ffs would later reject."""
    head = inp.read(VERIFY_HEAD_BYTES)
    inp.seek(0)
    head = head[: len(head) - len(head) % SECTOR_SIZE]
    if encrypt:
        if not has_ffs_superblock(head):
            raise DomusError(
                f"{src} has no FFS superblock, but the params say verify_method ffs",
                hint="cgdconfig would refuse every key for this disk; "
                "use params with verify_method none, or an FFS image",
            )
    elif not has_ffs_superblock(cipher.decrypt(head, 0)):
        raise DomusError(
            f"no FFS superblock in {src} after decryption: wrong key or passphrase",
            hint="check the params file and passphrase (verify_method ffs)",
        )


def _transform_range(
    cipher: SectorCipher,
    inp: BinaryIO,
    out: IO[bytes],
    src: Path,
    start: int,
    stop: int,
    chunk_size: int,
    encrypt: bool,
    progress: Progress | None = None,
) -> None:
    """Transform bytes start..stop of inp into the same place in out, a chunk at a time."""
    run = cipher.encrypt if encrypt else cipher.decrypt
    inp.seek(start)
    out.seek(start)
    for offset in range(start, stop, chunk_size):
        data = inp.read(min(chunk_size, stop - offset))
        if not data or len(data) % SECTOR_SIZE:
            raise DomusError(f"{src} changed size while being read")
        out.write(run(data, offset // SECTOR_SIZE))
        if progress is not None:
            progress.advance(len(data))


def _workers(jobs: int | None, size: int) -> int:
    if jobs is not None:
        return max(1, jobs)
    if size < PARALLEL_MIN_BYTES:
        return 1
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _transform_parallel(
    cipher: SectorCipher,
    src: Path,
    tmp: Path,
    size: int,
    chunk_size: int,
    workers: int,
    encrypt: bool,
    progress: Progress,
) -> None:
    """Let worker processes read and write their own ranges, so no data crosses a pipe."""
    # Enough ranges to keep every worker busy to the end, each still many chunks long.
    task_size = max(chunk_size, -(-size // (workers * 8 * chunk_size)) * chunk_size)
    # spawn, not fork: forking a process that may have threads is unsafe.
    pool = ProcessPoolExecutor(
        workers,
        mp_context=get_context("spawn"),
        initializer=_worker_init,
        initargs=(cipher.algorithm, cipher.key, cipher.iv_method),
    )
    with pool:
        ranges = [(start, min(start + task_size, size)) for start in range(0, size, task_size)]
        futures = [
            pool.submit(_worker_run, src, tmp, start, stop, chunk_size, encrypt)
            for start, stop in ranges
        ]
        try:
            for future, (start, stop) in zip(futures, ranges, strict=True):
                future.result()
                progress.advance(stop - start)
        except BrokenProcessPool:
            raise DomusError(
                "a worker process died", hint="run with one job (--jobs 1 / jobs=1)"
            ) from None
        finally:
            for future in futures:
                future.cancel()


_worker_cipher: SectorCipher | None = None


def _worker_init(algorithm: str, key: bytes, iv_method: str) -> None:
    global _worker_cipher
    _worker_cipher = make_cipher(algorithm, key, iv_method)


def _worker_run(
    src: Path, tmp: Path, start: int, stop: int, chunk_size: int, encrypt: bool
) -> None:
    assert _worker_cipher is not None
    with open(src, "rb") as inp, open(tmp, "r+b") as out:
        _transform_range(_worker_cipher, inp, out, src, start, stop, chunk_size, encrypt)
