"""NetBSD cgd(4) encryption off the target host, so domus can ship encrypted domU disks.

ciphers: the per-sector transforms; params: cgdconfig params files and keys; stream:
whole images, streamed. Run `./domus cgd --help` for the command line.
"""

from tasks.cgd.ciphers import ALGORITHMS, SECTOR_SIZE, SectorCipher, make_cipher
from tasks.cgd.params import Params, derive_key, generate, parse
from tasks.cgd.stream import decrypt_file, decrypt_sectors, encrypt_file, encrypt_sectors

__all__ = [
    "ALGORITHMS",
    "SECTOR_SIZE",
    "Params",
    "SectorCipher",
    "decrypt_file",
    "decrypt_sectors",
    "derive_key",
    "encrypt_file",
    "encrypt_sectors",
    "generate",
    "make_cipher",
    "parse",
]
