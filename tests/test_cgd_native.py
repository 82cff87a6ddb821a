"""aes-xts's C whitening: built by the host's cc into a cache, checked before use, and never
needed: without a compiler, or with one that builds something wrong, aes-xts runs on numpy
and gives the same bytes."""

import ctypes
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.cgd import native
from tasks.cgd.ciphers import XtsCipher, _NativeBatches, _NumpyBatches
from tests.sites import REPO

SHARED_CGD = Path(__file__).resolve().parents[2] / "shared" / "cgd"
VECTORS = json.loads((SHARED_CGD / "aes-xts-vectors.json").read_text())

needs_cc = pytest.mark.skipif(
    shutil.which(os.environ.get("CC") or "cc") is None, reason="no C compiler (cc)"
)


def libraries(cache: Path) -> list[str]:
    return sorted(path.name for path in cache.iterdir())


@needs_cc
def test_built_once_into_the_cache_and_checked(tmp_path):
    functions = native.build(tmp_path)
    assert functions is not None and native.agrees(functions)
    [library] = libraries(tmp_path)
    assert library.startswith("xts_whiten-") and library.endswith(".so")
    built = (tmp_path / library).stat().st_mtime_ns
    assert native.build(tmp_path) is not None
    assert libraries(tmp_path) == [library]
    assert (tmp_path / library).stat().st_mtime_ns == built


@needs_cc
def test_an_edited_source_is_built_anew(tmp_path, monkeypatch):
    first = native.build(tmp_path / "cache")
    edited = tmp_path / "xts_whiten.c"
    edited.write_bytes(native.SOURCE.read_bytes() + b"/* edited */\n")
    monkeypatch.setattr(native, "SOURCE", edited)
    assert first is not None and native.build(tmp_path / "cache") is not None
    assert len(libraries(tmp_path / "cache")) == 2


@pytest.mark.parametrize("compiler", ["false", "/nonexistent/cc"])
def test_no_working_compiler_means_none_and_no_leftovers(tmp_path, compiler):
    assert native.build(tmp_path, compiler) is None
    assert libraries(tmp_path) == []


def test_an_unwritable_cache_means_none(tmp_path):
    (tmp_path / "file").write_bytes(b"")
    assert native.build(tmp_path / "file" / "cache") is None


def python_relative(tweaks: int, sectors: int) -> None:
    first = int.from_bytes(ctypes.string_at(tweaks, 16), "little")
    for index in range(sectors):
        value = int.from_bytes(ctypes.string_at(tweaks + 16 * index, 16), "little")
        relative = value ^ native.times_alpha(first, 32 * index)
        ctypes.memmove(tweaks + 16 * index, relative.to_bytes(16, "little"), 16)


def python_whiten(tweaks: int, source: int, target: int, sectors: int, power: int = 0) -> None:
    for index in range(sectors):
        tweak = int.from_bytes(ctypes.string_at(tweaks + 16 * index, 16), "little")
        masks = native.masks(native.times_alpha(tweak, power).to_bytes(16, "little"))
        data = ctypes.string_at(source + 512 * index, 512)
        whitened = bytes(a ^ b for a, b in zip(data, masks, strict=True))
        ctypes.memmove(target + 512 * index, whitened, 512)


def test_functions_that_compute_something_else_are_refused():
    def no_masks(tweaks, source, target, sectors):
        ctypes.memmove(target, source, 512 * sectors)

    def doubled_once_too_often(tweaks, source, target, sectors):
        python_whiten(tweaks, source, target, sectors, power=1)

    def absolute(tweaks, sectors):  # leaves T_r as it is
        pass

    assert native.agrees(native.Whitening(python_relative, python_whiten))
    assert not native.agrees(native.Whitening(python_relative, no_masks))
    assert not native.agrees(native.Whitening(python_relative, doubled_once_too_often))
    assert not native.agrees(native.Whitening(absolute, python_whiten))


def test_masks_follow_ieee_1619():
    # T = 2^127: doubling shifts the top bit out and folds it back in as 0x87
    masks = native.masks((1 << 127).to_bytes(16, "little"))
    assert masks[:16] == (1 << 127).to_bytes(16, "little")
    assert masks[16:32] == (0x87).to_bytes(16, "little")
    assert masks[32:48] == (0x87 << 1).to_bytes(16, "little")


@needs_cc
def test_aes_xts_uses_the_c_whitening_where_cc_works():
    cipher = XtsCipher(os.urandom(32))
    cipher.encrypt(bytes(512), 0)
    assert isinstance(cipher._batches, _NativeBatches)
    unwhitened = XtsCipher(cipher.key, native=False)
    unwhitened.encrypt(bytes(512), 0)
    assert isinstance(unwhitened._batches, _NumpyBatches)


def test_aes_xts_without_the_c_whitening_gives_the_same_bytes(monkeypatch):
    monkeypatch.setattr(native, "whitening", lambda: None)
    for vector in VECTORS["vectors"]:
        cipher = XtsCipher(bytes.fromhex(vector["key_hex"]))
        plain, expected = bytes.fromhex(vector["ptxt_hex"]), bytes.fromhex(vector["ctxt_hex"])
        assert cipher.encrypt(plain, vector["blkno"]) == expected
        assert cipher.decrypt(expected, vector["blkno"]) == plain
        assert isinstance(cipher._batches, _NumpyBatches)


def test_a_host_without_a_compiler_encrypts_all_the_same():
    vector = VECTORS["vectors"][-1]
    code = (
        "import sys; from tasks.cgd.ciphers import make_cipher, _NumpyBatches; "
        f"c = make_cipher('aes-xts', bytes.fromhex({vector['key_hex']!r})); "
        f"out = bytes(c.encrypt(bytes.fromhex({vector['ptxt_hex']!r}), {vector['blkno']})); "
        "assert isinstance(c._batches, _NumpyBatches), c._batches; "
        "sys.stdout.write(out.hex())"
    )
    environment = {**os.environ, "CC": "/nonexistent/cc", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == vector["ctxt_hex"]


@settings(max_examples=40, deadline=None)
@given(
    half=st.binary(min_size=16, max_size=16) | st.binary(min_size=32, max_size=32),
    sectors=st.integers(0, 4200) | st.sampled_from([1023, 1025, 4095, 4096, 4097, 8193]),
    first_sector=st.integers(0, 2**64 - 8194) | st.just(2**64 - 8194),
    seed=st.integers(0, 2**32),
)
def test_c_and_numpy_whitening_agree(half, sectors, first_sector, seed):
    key = half + bytes(b ^ 0xA5 for b in half)  # two different halves
    plain = random.Random(seed).randbytes(512 * sectors)
    c_code, numpy = XtsCipher(key), XtsCipher(key, native=False)
    encrypted = bytes(c_code.encrypt(plain, first_sector))
    assert encrypted == numpy.encrypt(plain, first_sector)
    assert c_code.decrypt(encrypted, first_sector) == plain
    assert numpy.decrypt(encrypted, first_sector) == plain
