"""cgd(4)'s ciphers: the one table the site settings and the cgd code both read.

Kept free of `cryptography` (and of the rest of tasks.cgd) so the site loader can import it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CipherSpec:
    """What cgd accepts for one algorithm name, and whether domus can encrypt with it."""

    name: str
    keylengths: tuple[int, ...]  # bits
    default_keylength: int  # cgdconfig's default
    block_size: int  # bytes; also the size of blk
    # Adiantum is not: `cryptography` provides neither XChaCha12 nor NH.
    supported: bool = True


CIPHERS: dict[str, CipherSpec] = {
    spec.name: spec
    for spec in (
        CipherSpec("aes-xts", (256, 512), 256, 16),
        CipherSpec("aes-cbc", (128, 192, 256), 128, 16),
        CipherSpec("3des-cbc", (192,), 192, 8),
        CipherSpec("blowfish-cbc", tuple(range(40, 449, 8)), 128, 8),
        CipherSpec("adiantum", (256,), 256, 16, supported=False),
    )
}
# Ciphers domus can write itself (it encrypts local.img at build time).
SUPPORTED_CIPHERS = {name: spec for name, spec in CIPHERS.items() if spec.supported}
DEFAULT_CIPHER = "aes-xts"
