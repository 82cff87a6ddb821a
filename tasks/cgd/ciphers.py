"""Per-sector transforms of NetBSD cgd(4), so images can be encrypted off the target host.

cgd has no header: every 512-byte sector is encrypted on its own, keyed by its sector
number counted from the start of the cgd. `blk` is that number as le64, zero-padded to the
cipher block size; CBC ciphers derive the sector IV from it, aes-xts uses it as the tweak.

Work is done on many sectors per call because Python per-sector overhead, not the cipher,
sets the speed: IVs of a whole batch are one ECB call, CBC decryption is one call plus a
fix-up of each sector's first block, and CBC encryption feeds one running CBC context,
cancelling the chaining value at each sector start. aes-xts runs OpenSSL's XTS over a whole
batch as one data unit, whitened before and after by a small C function built with the
host's cc (tasks/cgd/native.py) that turns the batch's masks into each sector's own; where
there is none, AES-ECB over the batch whitened with every sector's masks made in numpy.

Adiantum is not implemented: `cryptography` provides neither XChaCha12 nor NH, and a
pure-Python version would run at a few MB/s; asking for it raises DomusError.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from array import array
from collections.abc import Callable
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.ciphers import Cipher, CipherAlgorithm, algorithms, modes

from tasks.cgd.table import CIPHERS, CipherSpec
from tasks.run.errors import DomusError

if TYPE_CHECKING:
    import numpy as np

    from tasks.cgd.native import Whitening

try:
    from cryptography.hazmat.decrepit.ciphers.algorithms import Blowfish, TripleDES
except ImportError:  # cryptography < 43 still has them in the main namespace
    from cryptography.hazmat.primitives.ciphers.algorithms import (  # type: ignore[attr-defined,no-redef]
        Blowfish,
        TripleDES,
    )

SECTOR_SIZE = 512
MAX_SECTORS = 1 << 64  # blk holds the sector number as a 64-bit integer

BytesLike = bytes | bytearray | memoryview


# encblkno is the old name of encblkno8; both stay readable for old disks.
IV_METHODS: dict[str, int] = {"encblkno1": 1, "encblkno8": 8, "encblkno": 8}


class SectorCipher(ABC):
    """Encrypts and decrypts whole sectors; `first_sector` numbers the first one in `data`.

    algorithm, key and iv_method are kept so worker processes can rebuild the cipher.
    """

    algorithm: str
    key: bytes
    iv_method: str

    @property
    def keylength(self) -> int:
        """Key length in bits."""
        return len(self.key) * 8

    @abstractmethod
    def encrypt(self, data: BytesLike, first_sector: int) -> bytes | memoryview:
        """Encrypt len(data) // 512 consecutive sectors."""

    @abstractmethod
    def decrypt(self, data: BytesLike, first_sector: int) -> bytes | memoryview:
        """Decrypt len(data) // 512 consecutive sectors."""


def algorithm_info(algorithm: str) -> CipherSpec:
    """The table entry for `algorithm`, or a DomusError listing the known names."""
    try:
        return CIPHERS[algorithm]
    except KeyError:
        raise DomusError(
            f"unknown cgd algorithm {algorithm!r}",
            hint="use one of " + ", ".join(CIPHERS),
        ) from None


def check_keylength(algorithm: str, keylength: int) -> None:
    """Refuse key lengths cgd would refuse for `algorithm`."""
    info = algorithm_info(algorithm)
    if keylength not in info.keylengths:
        if len(info.keylengths) > 4:
            allowed = f"{info.keylengths[0]}..{info.keylengths[-1]} in steps of 8"
        else:
            allowed = ", ".join(map(str, info.keylengths))
        raise DomusError(
            f"{algorithm} does not take a {keylength}-bit key",
            hint=f"{algorithm} key lengths (bits): {allowed}",
        )


def check_iv_method(iv_method: str) -> None:
    """Refuse IV method names cgd does not know."""
    if iv_method not in IV_METHODS:
        raise DomusError(
            f"unknown cgd iv-method {iv_method!r}", hint="use one of " + ", ".join(IV_METHODS)
        )


def make_cipher(algorithm: str, key: bytes, iv_method: str = "encblkno1") -> SectorCipher:
    """The sector transform for `algorithm` with a raw `key` (len(key) * 8 = keylength)."""
    info = algorithm_info(algorithm)
    check_iv_method(iv_method)
    check_keylength(algorithm, len(key) * 8)
    if not info.supported:
        raise DomusError(
            f"{algorithm} is not supported by domus cgd",
            hint="the cryptography package has no XChaCha12/NH; use aes-xts instead",
        )
    if algorithm == "aes-xts":
        return XtsCipher(key)
    return CbcCipher(algorithm, key, iv_method)


def sector_count(data: BytesLike, first_sector: int) -> int:
    """Number of sectors in `data`, refusing partial sectors and numbers past 2**64."""
    size = memoryview(data).nbytes
    if size % SECTOR_SIZE:
        raise DomusError(
            f"{size} bytes is not a whole number of {SECTOR_SIZE}-byte sectors",
            hint="cgd works on whole sectors; pad the image to a multiple of 512 bytes",
        )
    count = size // SECTOR_SIZE
    if first_sector < 0 or first_sector + count > MAX_SECTORS:
        raise DomusError(f"sector numbers {first_sector}..{first_sector + count - 1} out of range")
    return count


def blk_blocks(first_sector: int, count: int, block_size: int) -> bytes:
    """blk of `count` consecutive sectors, concatenated: le64(n) zero-padded to block_size."""
    numbers = array("Q", range(first_sector, first_sector + count))
    if sys.byteorder == "big":
        numbers.byteswap()
    words = block_size // 8
    if words == 1:
        return numbers.tobytes()
    padded = array("Q", [0]) * (count * words)
    padded[0::words] = numbers
    return padded.tobytes()


class XtsCipher(SectorCipher):
    """aes-xts: IEEE 1619 XTS, one 512-byte data unit per sector, tweak = blk.

    native=False whitens with numpy even where the C whitening (tasks/cgd/native.py) builds.
    """

    algorithm = "aes-xts"
    iv_method = "encblkno1"

    def __init__(self, key: bytes, *, native: bool = True) -> None:
        check_keylength(self.algorithm, len(key) * 8)
        half = len(key) // 2
        if key[:half] == key[half:]:
            raise DomusError(
                "aes-xts key has two identical halves, which OpenSSL refuses",
                hint="generate a new key (./domus cgd genparams)",
            )
        self.key = key
        self.native = native
        self._batches: _XtsBatches | None = None
        self._out: np.ndarray | None = None

    def encrypt(self, data: BytesLike, first_sector: int) -> memoryview:
        return self._run(data, first_sector, encrypt=True)

    def decrypt(self, data: BytesLike, first_sector: int) -> memoryview:
        return self._run(data, first_sector, encrypt=False)

    def _run(self, data: BytesLike, first_sector: int, *, encrypt: bool) -> memoryview:
        # OpenSSL's XTS takes one tweak a call, so a sector a call would spend far more on
        # calls than on AES. Sectors are done a cache-sized batch at a time instead: whitened
        # into a work buffer, through one cipher call into the output, whitened again.
        import numpy as np

        count = sector_count(data, first_sector)
        out = self._output(count * SECTOR_SIZE + 16)  # update_into wants a block of room more
        if count:
            if self._batches is None:
                self._batches = _xts_batches(self.key, native=self.native)
            self._batches.run(encrypt, np.frombuffer(data, np.uint8), first_sector, out)
        return memoryview(out)[: count * SECTOR_SIZE]

    def _output(self, size: int) -> np.ndarray:
        """The last output again once nothing refers to it any more, else a new one.

        A fresh buffer of many MiB costs more in page faults than AES costs to fill it. A
        caller still holding the last result (a memoryview or numpy view of it) holds a
        reference, so CPython's count tells whether it may be written over."""
        import numpy as np

        out = self._out
        # three references: self._out, `out` and getrefcount's own argument
        if out is None or len(out) < size or sys.getrefcount(out) > 3:
            out = self._out = np.empty(size, np.uint8)
        return out


_XTS_BLOCKS = SECTOR_SIZE // 16


def _xts_batches(key: bytes, *, native: bool) -> _XtsBatches:
    from tasks.cgd.native import whitening

    functions = whitening() if native else None
    if functions is None:
        return _NumpyBatches(key)
    return _NativeBatches(key, functions)


class _XtsBatches(ABC):
    """What aes-xts keeps from call to call: the tweak and work buffers of a batch of
    `size` sectors, and an ECB context for the tweaks (ECB holds no state between blocks)."""

    size: int

    def __init__(self, key: bytes) -> None:
        import numpy as np

        self._tweak_context = Cipher(algorithms.AES(key[len(key) // 2 :]), modes.ECB()).encryptor()
        self._offsets = np.arange(self.size, dtype=np.uint64)
        # blk of each sector of the batch: le64 sector number, then eight zero bytes
        self._blk = np.zeros((self.size, 2), "<u8")
        # update_into wants a block of room more than it writes
        self._tweaks = np.empty(self.size * 2 + 2, "<u8")
        self.work = np.empty(self.size * SECTOR_SIZE + 16, np.uint8)

    def tweaks(self, first_sector: int, count: int) -> np.ndarray:
        """T = AES_k2(blk) of `count` sectors from `first_sector`, as a (count, 2) le64 array."""
        import numpy as np

        np.add(self._offsets[:count], np.uint64(first_sector), out=self._blk[:count, 0])
        blk = self._blk.reshape(-1).view(np.uint8)[: count * 16]
        self._tweak_context.update_into(blk, self._tweaks.view(np.uint8)[: count * 16 + 15])
        return self._tweaks[: count * 2].reshape(count, 2)

    @abstractmethod
    def run(self, encrypt: bool, sectors: np.ndarray, first: int, out: np.ndarray) -> None:
        """aes-xts of `sectors` (bytes, the first numbered `first`) into `out`."""


class _NativeBatches(_XtsBatches):
    """A batch through OpenSSL's XTS as one data unit, which runs many blocks at once; the
    C functions of tasks/cgd/native.py turn its masks into each sector's own around it."""

    # Sectors per batch: enough that Python's per-call cost is small, few enough that the
    # work buffer and the batch of output stay in the CPU's caches.
    size = 4096

    def __init__(self, key: bytes, functions: Whitening) -> None:
        super().__init__(key)
        self._key = algorithms.AES(key)
        self._functions = functions

    def run(self, encrypt: bool, sectors: np.ndarray, first: int, out: np.ndarray) -> None:
        relative, whiten = self._functions
        work = self.work
        # addresses taken once: numpy's .ctypes costs a microsecond or two each time
        tweaks, source, middle, target = (
            array.ctypes.data for array in (self._tweaks, sectors, work, out)
        )
        count = len(sectors) // SECTOR_SIZE
        for start in range(0, count, self.size):
            number = min(self.size, count - start)
            at, size = start * SECTOR_SIZE, number * SECTOR_SIZE
            self.tweaks(first + start, number)
            relative(tweaks, number)
            whiten(tweaks, source + at, middle, number)
            # the batch's tweak is its first sector's blk, so its masks start as cgd's do
            xts = Cipher(self._key, modes.XTS((first + start).to_bytes(16, "little")))
            context = xts.encryptor() if encrypt else xts.decryptor()
            context.update_into(work[:size], out[at : at + size + 15])
            whiten(tweaks, target + at, target + at, number)


class _NumpyBatches(_XtsBatches):
    """The XTS masks T_s * alpha^j (j = 0..31) of a batch of sectors, from their tweaks T_s.

    Multiplying by alpha^k in GF(2^128) (IEEE 1619's little-endian order) is a 128-bit
    shift left by k with the k bits shifted out folded back in as x^7 + x^2 + x + 1.
    Rows j are built block-major, doubling the rows done at each step (1, 2, 4, 8, 16), so
    every numpy call works on long contiguous rows; the batch is then turned sector-major
    once, with 16-byte elements, to XOR straight onto the sectors before and after AES-ECB.
    """

    size = 1024

    def __init__(self, key: bytes) -> None:
        import numpy as np

        super().__init__(key)
        ecb = Cipher(algorithms.AES(key[: len(key) // 2]), modes.ECB())
        self._encryptor, self._decryptor = ecb.encryptor(), ecb.decryptor()
        sectors = self.size
        self.low = np.empty((_XTS_BLOCKS, sectors), "<u8")
        self.high = np.empty((_XTS_BLOCKS, sectors), "<u8")
        self.carry = np.empty((_XTS_BLOCKS // 2, sectors), "<u8")
        self.scratch = np.empty((_XTS_BLOCKS // 2, sectors), "<u8")
        self.block_major = np.empty((_XTS_BLOCKS, sectors, 2), "<u8")
        self.sector_major = np.empty((sectors, _XTS_BLOCKS, 2), "<u8")

    def run(self, encrypt: bool, sectors: np.ndarray, first: int, out: np.ndarray) -> None:
        import numpy as np

        context = self._encryptor if encrypt else self._decryptor
        work = self.work
        count = len(sectors) // SECTOR_SIZE
        for start in range(0, count, self.size):
            number = min(self.size, count - start)
            at, size = start * SECTOR_SIZE, number * SECTOR_SIZE
            masks = self.masks(self.tweaks(first + start, number))
            source = sectors[at : at + size].view("<u8").reshape(masks.shape)
            np.bitwise_xor(source, masks, out=work[:size].view("<u8").reshape(masks.shape))
            context.update_into(work[:size], out[at : at + size + 15])
            done = out[at : at + size].view("<u8").reshape(masks.shape)
            done ^= masks

    def masks(self, tweaks: np.ndarray) -> np.ndarray:
        """The (sectors, 32, 2) masks of `tweaks`, a (sectors, 2) array of T_s as le64 pairs."""
        import numpy as np

        n = len(tweaks)
        low, high = self.low[:, :n], self.high[:, :n]
        low[0], high[0] = tweaks[:, 0], tweaks[:, 1]
        done = 1
        while done < _XTS_BLOCKS:
            shift, back = np.uint64(done), np.uint64(64 - done)
            carry, scratch = self.carry[:done, :n], self.scratch[:done, :n]
            new_low, new_high = low[done : 2 * done], high[done : 2 * done]
            np.right_shift(high[:done], back, out=carry)
            np.left_shift(high[:done], shift, out=new_high)
            np.right_shift(low[:done], back, out=scratch)
            new_high |= scratch
            np.left_shift(low[:done], shift, out=new_low)
            new_low ^= carry
            for fold in (1, 2, 7):
                np.left_shift(carry, np.uint64(fold), out=scratch)
                new_low ^= scratch
            done *= 2
        block_major = self.block_major[:, :n]
        block_major[:, :, 0], block_major[:, :, 1] = low, high
        sector_major = self.sector_major[:n]
        # complex128 only as a 16-byte unit for the copy: the bits are never read as numbers
        np.copyto(
            sector_major.view(np.complex128)[:, :, 0], block_major.view(np.complex128)[:, :, 0].T
        )
        return sector_major


class CbcCipher(SectorCipher):
    """CBC over each sector with IV = E_k^rounds(blk): rounds is 1 (encblkno1) or 8."""

    def __init__(self, algorithm: str, key: bytes, iv_method: str = "encblkno1") -> None:
        check_iv_method(iv_method)
        check_keylength(algorithm, len(key) * 8)
        if algorithm not in _CBC_BLOCK_CIPHERS:
            raise DomusError(f"{algorithm} is not a CBC algorithm")
        self.algorithm = algorithm
        self.key = key
        self.iv_method = iv_method
        self.block_size = CIPHERS[algorithm].block_size
        self.iv_rounds = IV_METHODS[iv_method]
        self._block_cipher: CipherAlgorithm = _CBC_BLOCK_CIPHERS[algorithm](key)

    def sector_ivs(self, first_sector: int, count: int) -> bytes:
        """IVs of `count` sectors, concatenated: ECB is exactly E_k on each blk at once."""
        ivs = blk_blocks(first_sector, count, self.block_size)
        ecb = Cipher(self._block_cipher, modes.ECB()).encryptor()
        for _ in range(self.iv_rounds):
            ivs = ecb.update(ivs)
        return ivs

    def encrypt(self, data: BytesLike, first_sector: int) -> bytes:
        count = sector_count(data, first_sector)
        if not count:
            return b""
        bs = self.block_size
        ivs = self.sector_ivs(first_sector, count)
        view = memoryview(data).cast("B")
        firsts = _gather_blocks(view.cast("Q"), 0, count, 0, bs)
        heads = (int.from_bytes(firsts, "little") ^ int.from_bytes(ivs, "little")).to_bytes(
            count * bs, "little"
        )
        update = Cipher(self._block_cipher, modes.CBC(ivs[:bs])).encryptor().update
        from_bytes = int.from_bytes
        # One running CBC context: XORing the previous ciphertext block into a sector's first
        # plaintext block cancels the chaining CBC applies, so that block sees IV_s instead.
        chained = from_bytes(ivs[:bs], "little")
        out = []
        for index in range(count):
            offset = index * SECTOR_SIZE
            head = from_bytes(heads[index * bs : index * bs + bs], "little") ^ chained
            sector = update(head.to_bytes(bs, "little") + view[offset + bs : offset + SECTOR_SIZE])
            out.append(sector)
            chained = from_bytes(sector[-bs:], "little")
        return b"".join(out)

    def decrypt(self, data: BytesLike, first_sector: int) -> bytes:
        count = sector_count(data, first_sector)
        if not count:
            return b""
        bs = self.block_size
        ivs = self.sector_ivs(first_sector, count)
        view = memoryview(data).cast("B")
        plain = bytearray(Cipher(self._block_cipher, modes.CBC(ivs[:bs])).decryptor().update(view))
        if count > 1:
            self._fix_first_blocks(plain, view, ivs, count)
        return bytes(plain)

    def _fix_first_blocks(
        self, plain: bytearray, cipher_text: memoryview, ivs: bytes, count: int
    ) -> None:
        # One CBC pass over many sectors XORs sector s's first block with the last
        # ciphertext block of sector s-1; XOR that out again and IV_s in, for all s >= 1.
        bs = self.block_size
        plain_words = memoryview(plain).cast("Q")
        cipher_words = cipher_text.cast("Q")
        firsts = _gather_blocks(plain_words, 1, count - 1, 0, bs)
        lasts = _gather_blocks(cipher_words, 0, count - 1, SECTOR_SIZE - bs, bs)
        size = (count - 1) * bs
        fixed = (
            int.from_bytes(firsts, "little")
            ^ int.from_bytes(lasts, "little")
            ^ int.from_bytes(ivs[bs:], "little")
        ).to_bytes(size, "little")
        _scatter_blocks(plain_words, 1, count - 1, memoryview(fixed).cast("Q"), bs)


_CBC_BLOCK_CIPHERS: dict[str, Callable[[bytes], CipherAlgorithm]] = {
    "aes-cbc": algorithms.AES,
    "3des-cbc": TripleDES,
    "blowfish-cbc": Blowfish,
}
_SECTOR_WORDS = SECTOR_SIZE // 8


def _gather_blocks(
    words: memoryview, first: int, count: int, offset: int, block_size: int
) -> bytearray:
    """The block at byte `offset` of sectors first..first+count-1, concatenated."""
    step = block_size // 8
    out = bytearray(count * block_size)
    out_words = memoryview(out).cast("Q")
    start = first * _SECTOR_WORDS + offset // 8
    stop = start + count * _SECTOR_WORDS
    for word in range(step):
        out_words[word::step] = words[start + word : stop : _SECTOR_WORDS]
    return out


def _scatter_blocks(
    words: memoryview, first: int, count: int, blocks: memoryview, block_size: int
) -> None:
    """Write `blocks` over the first block of sectors first..first+count-1."""
    step = block_size // 8
    start = first * _SECTOR_WORDS
    stop = start + count * _SECTOR_WORDS
    for word in range(step):
        words[start + word : stop : _SECTOR_WORDS] = blocks[word::step]
