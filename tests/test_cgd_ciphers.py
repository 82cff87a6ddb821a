"""cgd sector transforms: NetBSD's known answers, plus references built here from plain
AES/3DES/Blowfish ECB and CBC, so the batched tricks in tasks.cgd.ciphers are checked
against the per-sector definition rather than against themselves."""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import Blowfish, TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.cgd.ciphers import (
    _CBC_BLOCK_CIPHERS,
    IV_METHODS,
    CbcCipher,
    XtsCipher,
    make_cipher,
)
from tasks.cgd.stream import decrypt_sectors, encrypt_sectors
from tasks.cgd.table import CIPHERS
from tasks.formats.superblocks import has_ffs_superblock
from tasks.run.errors import DomusError
from tasks.site.settings import DOMAIN
from tests.sites import REPO

SHARED_CGD = Path(__file__).resolve().parents[2] / "shared" / "cgd"
VECTORS = json.loads((SHARED_CGD / "aes-xts-vectors.json").read_text())["vectors"]

CBC_REFERENCE = {"aes-cbc": algorithms.AES, "3des-cbc": TripleDES, "blowfish-cbc": Blowfish}
SUPPORTED = [name for name, info in CIPHERS.items() if info.supported]


def every_cipher_setting():
    for name in SUPPORTED:
        for bits in CIPHERS[name].keylengths:
            for iv_method in IV_METHODS:
                yield name, bits, iv_method


def reference_cbc_sector(name: str, key: bytes, sector: int, plain: bytes, rounds: int) -> bytes:
    """One sector as SPEC.md defines it, one cipher call at a time."""
    block = CBC_REFERENCE[name](key)
    blk = sector.to_bytes(8, "little").ljust(block.block_size // 8, b"\0")
    iv = blk
    for _ in range(rounds):
        iv = Cipher(block, modes.ECB()).encryptor().update(iv)
    return Cipher(block, modes.CBC(iv)).encryptor().update(plain)


# aes-xts whitens with C where cc builds it, else numpy (tests/test_cgd_native.py): both
WHITENINGS = pytest.mark.parametrize("native", [True, False], ids=["c", "numpy"])


@WHITENINGS
@pytest.mark.parametrize("vector", VECTORS, ids=[v["note"] for v in VECTORS])
def test_xts_known_answers(vector, native):
    assert vector["algorithm"] == "aes-xts"
    cipher = XtsCipher(bytes.fromhex(vector["key_hex"]), native=native)
    plain, expected = bytes.fromhex(vector["ptxt_hex"]), bytes.fromhex(vector["ctxt_hex"])
    assert vector["sector_size"] == 512
    assert cipher.encrypt(plain, vector["blkno"]) == expected
    assert cipher.decrypt(expected, vector["blkno"]) == plain


@WHITENINGS
@pytest.mark.parametrize("vector", VECTORS, ids=[v["note"] for v in VECTORS])
def test_xts_known_answers_inside_a_batch(vector, native):
    cipher = XtsCipher(bytes.fromhex(vector["key_hex"]), native=native)
    plain, expected = bytes.fromhex(vector["ptxt_hex"]), bytes.fromhex(vector["ctxt_hex"])
    before = min(vector["blkno"], 3)
    batch = os.urandom(512 * before) + plain + os.urandom(512 * 2)
    at = 512 * before
    encrypted = cipher.encrypt(batch, vector["blkno"] - before)
    assert encrypted[at : at + 512] == expected
    assert cipher.decrypt(encrypted, vector["blkno"] - before) == batch


def reference_xts(key: bytes, data: bytes, first_sector: int, *, encrypt: bool) -> bytes:
    """cgd's aes-xts as NetBSD's cgd_cipher_aes_xts runs it: IEEE 1619 XTS over each
    512-byte sector on its own, the sector number (le64, zero-padded) as the tweak."""
    out = []
    for index in range(len(data) // 512):
        tweak = (first_sector + index).to_bytes(16, "little")
        xts = Cipher(algorithms.AES(key), modes.XTS(tweak))
        context = xts.encryptor() if encrypt else xts.decryptor()
        out.append(context.update(data[index * 512 : (index + 1) * 512]))
    return b"".join(out)


@WHITENINGS
@settings(max_examples=60, deadline=None)
@given(
    key=st.binary(min_size=32, max_size=32) | st.binary(min_size=64, max_size=64),
    sectors=st.integers(0, 2100),
    first_sector=st.integers(0, 2**64 - 2101) | st.integers(2**64 - 2101, 2**64 - 2101),
    seed=st.integers(0, 2**32),
)
def test_xts_batches_equal_one_sector_at_a_time(native, key, sectors, first_sector, seed):
    half = len(key) // 2
    if key[:half] == key[half:]:
        return  # refused: see test_bad_cipher_settings
    plain = random.Random(seed).randbytes(512 * sectors)
    cipher = XtsCipher(key, native=native)
    encrypted = cipher.encrypt(plain, first_sector)
    assert encrypted == reference_xts(key, plain, first_sector, encrypt=True)
    assert cipher.decrypt(plain, first_sector) == reference_xts(
        key, plain, first_sector, encrypt=False
    )
    assert cipher.decrypt(encrypted, first_sector) == plain


@WHITENINGS
def test_xts_across_batches_equals_one_sector_at_a_time(native):
    # more sectors than two batches of either whitening, the last one partial
    key = os.urandom(64)
    plain = os.urandom(512 * 8195)
    expected = reference_xts(key, plain, 2**40 - 5, encrypt=True)
    cipher = XtsCipher(key, native=native)
    assert cipher.encrypt(plain, 2**40 - 5) == expected
    assert cipher.decrypt(expected, 2**40 - 5) == plain


def test_xts_output_is_written_over_only_once_released():
    cipher = make_cipher("aes-xts", os.urandom(64))
    first_plain, second_plain = os.urandom(4096), os.urandom(4096)
    first = cipher.encrypt(first_plain, 0)
    kept = bytes(first)
    second = cipher.encrypt(second_plain, 0)
    assert first == kept
    assert second == reference_xts(cipher.key, second_plain, 0, encrypt=True)
    address = np.frombuffer(second, np.uint8).ctypes.data
    del first, second
    # nothing holds the last output any more: its pages are filled again, not new ones
    third = cipher.encrypt(first_plain, 0)
    assert np.frombuffer(third, np.uint8).ctypes.data == address
    assert third == kept
    # decrypting a held output never writes over it while reading it
    assert cipher.decrypt(third, 0) == first_plain
    assert third == kept


def test_xts_iv_method_is_ignored():
    vector = VECTORS[3]
    plain = bytes.fromhex(vector["ptxt_hex"])
    key = bytes.fromhex(vector["key_hex"])
    assert make_cipher("aes-xts", key, "encblkno8").encrypt(plain, vector["blkno"]) == (
        bytes.fromhex(vector["ctxt_hex"])
    )


@pytest.mark.parametrize(("name", "bits", "iv_method"), list(every_cipher_setting()))
def test_round_trip(name, bits, iv_method):
    cipher = make_cipher(name, os.urandom(bits // 8), iv_method)
    plain = os.urandom(512 * 5)
    encrypted = cipher.encrypt(plain, 77)
    assert len(encrypted) == len(plain)
    assert encrypted != plain
    assert cipher.decrypt(encrypted, 77) == plain
    # The sector number is part of the transform.
    assert cipher.encrypt(plain, 78) != encrypted


def test_aes_cbc_encblkno1_sector_5_by_hand():
    key = bytes(range(16))
    plain = bytes(range(256)) * 2
    # IV = AES_k(le64(5) || 0^8), then ordinary CBC over the 512 bytes.
    iv = (
        Cipher(algorithms.AES(key), modes.ECB())
        .encryptor()
        .update(b"\x05\0\0\0\0\0\0\0" + bytes(8))
    )
    expected = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor().update(plain)
    cipher = make_cipher("aes-cbc", key, "encblkno1")
    assert cipher.encrypt(plain, 5) == expected
    batch = cipher.encrypt(os.urandom(1024) + plain + os.urandom(1024), 3)
    assert batch[1024:1536] == expected


@pytest.mark.parametrize("name", sorted(CBC_REFERENCE))
@pytest.mark.parametrize(("iv_method", "rounds"), [(m, r) for m, r in IV_METHODS.items()])
def test_cbc_batches_match_one_sector_at_a_time(name, iv_method, rounds):
    key = os.urandom(CIPHERS[name].default_keylength // 8)
    plain = os.urandom(512 * 9)
    first = 2**40 + 11
    expected = b"".join(
        reference_cbc_sector(name, key, first + i, plain[512 * i : 512 * (i + 1)], rounds)
        for i in range(9)
    )
    cipher = make_cipher(name, key, iv_method)
    assert cipher.encrypt(plain, first) == expected
    assert cipher.decrypt(expected, first) == plain


@pytest.mark.parametrize("name", sorted(CBC_REFERENCE))
def test_encblkno8_iv_is_eightfold_encryption(name):
    key = os.urandom(CIPHERS[name].default_keylength // 8)
    block = CBC_REFERENCE[name](key)
    size = block.block_size // 8
    blk = (1234).to_bytes(8, "little").ljust(size, b"\0")
    # SPEC.md's second description: last block of CBC over eight zero blocks, IV = blk.
    iv = Cipher(block, modes.CBC(blk)).encryptor().update(bytes(8 * size))[-size:]
    eightfold = blk
    for _ in range(8):
        eightfold = Cipher(block, modes.ECB()).encryptor().update(eightfold)
    assert iv == eightfold
    plain = os.urandom(512)
    expected = Cipher(block, modes.CBC(iv)).encryptor().update(plain)
    assert make_cipher(name, key, "encblkno8").encrypt(plain, 1234) == expected
    assert make_cipher(name, key, "encblkno").encrypt(plain, 1234) == expected
    assert make_cipher(name, key, "encblkno1").encrypt(plain, 1234) != expected


@pytest.mark.parametrize("name", SUPPORTED)
def test_highest_sector_numbers(name):
    cipher = make_cipher(name, os.urandom(CIPHERS[name].default_keylength // 8))
    plain = os.urandom(1024)
    last_two = 2**64 - 2
    assert cipher.decrypt(cipher.encrypt(plain, last_two), last_two) == plain
    with pytest.raises(DomusError, match="out of range"):
        cipher.encrypt(plain, 2**64 - 1)
    with pytest.raises(DomusError, match="out of range"):
        cipher.encrypt(plain, -1)


@pytest.mark.parametrize("name", SUPPORTED)
def test_partial_sectors_are_refused(name):
    cipher = make_cipher(name, os.urandom(CIPHERS[name].default_keylength // 8))
    with pytest.raises(DomusError, match="512-byte sectors"):
        cipher.encrypt(bytes(700), 0)
    assert cipher.encrypt(b"", 0) == b""


def test_stream_sector_helpers_use_the_cipher():
    cipher = make_cipher("aes-cbc", os.urandom(32))
    plain = os.urandom(4096)
    encrypted = encrypt_sectors(cipher, plain, 9)
    assert encrypted == cipher.encrypt(plain, 9)
    assert decrypt_sectors(cipher, encrypted, 9) == plain


@pytest.mark.parametrize("name", list(CIPHERS))
def test_every_row_of_the_cipher_table_has_a_sector_cipher_or_is_refused(name):
    spec = CIPHERS[name]
    key = os.urandom(spec.default_keylength // 8)
    if not spec.supported:
        with pytest.raises(DomusError, match="is not supported"):
            make_cipher(name, key)
        return
    cipher = make_cipher(name, key)
    assert cipher.algorithm == name
    plain = os.urandom(1024)
    encrypted = cipher.encrypt(plain, 3)
    assert encrypted != plain and cipher.decrypt(encrypted, 3) == plain


def test_the_sector_ciphers_are_the_supported_rows_of_the_table():
    implemented = {XtsCipher.algorithm, *_CBC_BLOCK_CIPHERS}
    assert implemented == {name for name, spec in CIPHERS.items() if spec.supported}
    for name in _CBC_BLOCK_CIPHERS:
        cbc = CbcCipher(name, bytes(range(CIPHERS[name].default_keylength // 8)))
        assert cbc._block_cipher.block_size == CIPHERS[name].block_size * 8


def test_the_site_offers_the_table_and_loads_without_cryptography():
    assert DOMAIN.settings["swap.cipher"].kind.choices == tuple(CIPHERS)
    assert DOMAIN.settings["local.cipher"].kind.choices == tuple(
        name for name, spec in CIPHERS.items() if spec.supported
    )
    code = (
        "import sys; from tasks.site import load_site; import tasks.site.settings; "
        "assert 'cryptography' not in sys.modules, 'the site loader imports cryptography'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("adiantum", bytes(32)), "adiantum is not supported"),
        (("serpent-cbc", bytes(32)), "unknown cgd algorithm"),
        (("aes-xts", bytes(16)), "does not take a 128-bit key"),
        (("aes-cbc", bytes(16), "encblkno2"), "unknown cgd iv-method"),
        (("blowfish-cbc", bytes(4)), "does not take a 32-bit key"),
        (("aes-xts", bytes(32)), "identical halves"),
    ],
)
def test_bad_cipher_settings(args, message):
    with pytest.raises(DomusError, match=message):
        make_cipher(*args)


def fake_superblock(offset: int, magic: int, byteorder: str, size: int = 270336) -> bytes:
    head = bytearray(size)
    head[offset + 1372 : offset + 1376] = magic.to_bytes(4, byteorder)
    return bytes(head)


@pytest.mark.parametrize("byteorder", ["little", "big"])
@pytest.mark.parametrize(
    ("offset", "magic"), [(8192, 0x011954), (65536, 0x19540119), (0, 0x011954), (262144, 0x011954)]
)
def test_verify_ffs_finds_superblocks(offset, magic, byteorder):
    assert has_ffs_superblock(fake_superblock(offset, magic, byteorder))


def test_verify_ffs_rejects_other_data():
    assert not has_ffs_superblock(bytes(270336))
    assert not has_ffs_superblock(os.urandom(270336))
    assert not has_ffs_superblock(fake_superblock(8192 + 4, 0x011954, "little"))
    assert not has_ffs_superblock(b"")
