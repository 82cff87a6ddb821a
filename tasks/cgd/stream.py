"""Whole images through cgd: the bytes cgd(4) would put on the parent disk, made off-host.

Images run to gigabytes, so files are streamed in chunks and never held in memory, and OUT
appears only once complete (written beside it, then renamed), so a failed run never leaves
something that looks like a finished image. Every sector is independent, so big inputs are
split over worker processes: aes-xts needs one OpenSSL context per sector, and that Python
overhead, not AES, is what limits one core.
"""

from __future__ import annotations

import os
import tempfile
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing import get_context
from pathlib import Path
from typing import BinaryIO

from tasks.cgd.ciphers import SECTOR_SIZE, BytesLike, SectorCipher, make_cipher
from tasks.cgd.params import Params, derive_key
from tasks.errors import DomusError

CHUNK_SIZE = 1 << 20
PARALLEL_MIN_BYTES = 32 << 20  # below this, starting workers costs more than it saves

# cgdconfig's verify_ffs: struct fs (fs_magic is its last field, at byte 1372) is looked
# for at each SBLOCKSEARCH offset, in this order, in either byte order.
SBLOCK_SEARCH = (65536, 8192, 0, 262144)
FS_MAGIC_OFFSET = 1372
FFS_MAGICS = frozenset({0x011954, 0x19540119})  # FS_UFS1_MAGIC, FS_UFS2_MAGIC
VERIFY_HEAD_BYTES = max(SBLOCK_SEARCH) + 8192  # SBLOCKSIZE past the last offset

KeySource = Params | SectorCipher


def encrypt_sectors(cipher: SectorCipher, data: BytesLike, first_sector: int) -> bytes:
    """Encrypt whole sectors; `first_sector` is the cgd sector number of data[0:512]."""
    return cipher.encrypt(data, first_sector)


def decrypt_sectors(cipher: SectorCipher, data: BytesLike, first_sector: int) -> bytes:
    """Decrypt whole sectors; `first_sector` is the cgd sector number of data[0:512]."""
    return cipher.decrypt(data, first_sector)


def verify_ffs(plaintext_head: bytes) -> bool:
    """True if the start of a decrypted cgd holds an FFS superblock, as cgdconfig checks."""
    for offset in SBLOCK_SEARCH:
        at = offset + FS_MAGIC_OFFSET
        field = plaintext_head[at : at + 4]
        if len(field) == 4 and (
            int.from_bytes(field, "little") in FFS_MAGICS
            or int.from_bytes(field, "big") in FFS_MAGICS
        ):
            return True
    return False


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
def atomic_output(dst: Path) -> Iterator[BinaryIO]:
    """A mode-0600 file beside dst that replaces dst only if the block exits cleanly."""
    try:
        fd, name = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".part", dir=dst.parent)
    except OSError as e:
        raise DomusError(f"cannot write {dst}: {e.strerror}") from None
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
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
        with atomic_output(dst) as out:
            chunks = _read_chunks(inp, src, size, chunk_size)
            for piece in _transform_chunks(cipher, chunks, workers, encrypt=encrypt):
                out.write(piece)


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
        if not verify_ffs(head):
            raise DomusError(
                f"{src} has no FFS superblock, but the params say verify_method ffs",
                hint="cgdconfig would refuse every key for this disk; "
                "use params with verify_method none, or an FFS image",
            )
    elif not verify_ffs(cipher.decrypt(head, 0)):
        raise DomusError(
            f"no FFS superblock in {src} after decryption: wrong key or passphrase",
            hint="check the params file and passphrase (verify_method ffs)",
        )


def _read_chunks(
    inp: BinaryIO, src: Path, size: int, chunk_size: int
) -> Iterator[tuple[int, bytes]]:
    """(first sector, data) pieces of inp, checking it is still `size` bytes long."""
    offset = 0
    while offset < size:
        data = inp.read(min(chunk_size, size - offset))
        if not data or len(data) % SECTOR_SIZE:
            raise DomusError(f"{src} changed size while being read")
        yield offset // SECTOR_SIZE, data
        offset += len(data)


def _workers(jobs: int | None, size: int) -> int:
    if jobs is not None:
        return max(1, jobs)
    if size < PARALLEL_MIN_BYTES:
        return 1
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _transform_chunks(
    cipher: SectorCipher, chunks: Iterable[tuple[int, bytes]], workers: int, *, encrypt: bool
) -> Iterator[bytes]:
    if workers == 1:
        run = cipher.encrypt if encrypt else cipher.decrypt
        for first_sector, data in chunks:
            yield run(data, first_sector)
        return
    # spawn, not fork: forking a process that may have threads is unsafe.
    pool = ProcessPoolExecutor(
        workers,
        mp_context=get_context("spawn"),
        initializer=_worker_init,
        initargs=(cipher.algorithm, cipher.key, cipher.iv_method),
    )
    try:
        pending: deque[Future[bytes]] = deque()
        for first_sector, data in chunks:
            pending.append(pool.submit(_worker_run, data, first_sector, encrypt))
            if len(pending) >= 2 * workers:  # bounds memory to a few chunks per worker
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


_worker_cipher: SectorCipher | None = None


def _worker_init(algorithm: str, key: bytes, iv_method: str) -> None:
    global _worker_cipher
    _worker_cipher = make_cipher(algorithm, key, iv_method)


def _worker_run(data: bytes, first_sector: int, encrypt: bool) -> bytes:
    assert _worker_cipher is not None
    return (_worker_cipher.encrypt if encrypt else _worker_cipher.decrypt)(data, first_sector)
