"""aes-xts's whitening in C (xts_whiten.c), built with the host's compiler on first use.

aes-xts runs a batch of sectors through OpenSSL's XTS as one data unit, between two XORs
that turn the batch's masks into each sector's own (xts_whiten.c says how). numpy makes such
masks in several passes over memory and spends far more time on them than AES takes; C
makes them in registers (bench/README.md has the numbers). It is compiled once into
__pycache__ beside this file, as Python caches bytecode, under a name made from the source,
the compiler command and the machine, so an edited source never runs stale; and it is
checked against the definition before use. Where no compiler works, the directory cannot
be written or the check fails, `whitening()` is None and aes-xts uses numpy.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shlex
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

SOURCE = Path(__file__).with_name("xts_whiten.c")
CACHE = SOURCE.with_name("__pycache__")
FLAGS = ("-O2", "-shared", "-fPIC")
BUILD_SECONDS = 120

MASK = (1 << 128) - 1


class Whitening(NamedTuple):
    """The C functions, called with addresses, then a count of sectors."""

    # relative(tweaks, sectors): each T_r becomes U_r = T_r ^ T_0 * alpha^(32 r), in place
    relative: Callable[[int, int], None]
    # whiten(tweaks, in, out, sectors): out = in ^ U_r * alpha^j; in may be out
    whiten: Callable[[int, int, int, int], None]


@functools.cache
def whitening() -> Whitening | None:
    """The C whitening, built or loaded once a process; None where it cannot be had."""
    return build(CACHE)


def build(cache: Path, compiler: str | None = None) -> Whitening | None:
    """Build (unless already built) and load the whitening in `cache`; $CC or cc compiles."""
    command = [*shlex.split(compiler or os.environ.get("CC") or "cc"), *FLAGS]
    source = SOURCE.read_bytes()
    digest = hashlib.sha256(source)
    digest.update("\0".join([*command, platform.machine()]).encode())
    library = cache / f"xts_whiten-{digest.hexdigest()[:16]}.so"
    if not library.exists() and not _compile(command, library):
        return None
    try:
        loaded = ctypes.CDLL(str(library))
        relative, whiten = loaded.cgd_xts_relative, loaded.cgd_xts_whiten
    except (OSError, AttributeError):
        return None
    relative.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    whiten.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    relative.restype = whiten.restype = None
    functions = Whitening(relative, whiten)
    return functions if agrees(functions) else None


def _compile(command: list[str], library: Path) -> bool:
    # Written beside its name and renamed: processes building at once never load half a file.
    try:
        library.parent.mkdir(exist_ok=True)
        handle, partial = tempfile.mkstemp(prefix=".xts_whiten-", suffix=".so", dir=library.parent)
    except OSError:
        return False
    os.close(handle)
    try:
        done = subprocess.run(
            [*command, "-o", partial, str(SOURCE)], capture_output=True, timeout=BUILD_SECONDS
        )
        if done.returncode != 0:
            return False
        os.chmod(partial, 0o755)  # mkstemp's 0600 would keep it from other users, as a .pyc is not
        os.replace(partial, library)
        return True
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        Path(partial).unlink(missing_ok=True)


def times_alpha(value: int, power: int = 1) -> int:
    """value * alpha^power in GF(2^128) as IEEE 1619 has it, one doubling at a time."""
    for _ in range(power):
        value = (value << 1 ^ (0x87 if value >> 127 else 0)) & MASK
    return value


def masks(tweak: bytes) -> bytes:
    """The 32 masks T * alpha^j of a sector, from IEEE 1619's definition on integers."""
    value = int.from_bytes(tweak, "little")
    return b"".join(times_alpha(value, j).to_bytes(16, "little") for j in range(32))


def agrees(functions: Whitening) -> bool:
    """Whether `functions` compute what their comments say, on integers.

    The tweaks are all ones (every fold taken at every step) and fixed arbitrary ones."""
    tweaks = b"\xff" * 16 + hashlib.sha256(b"cgd aes-xts").digest()
    values = [int.from_bytes(tweaks[at : at + 16], "little") for at in range(0, 48, 16)]
    held = ctypes.create_string_buffer(tweaks, 48)
    functions.relative(ctypes.addressof(held), 3)
    relative = b"".join(
        (value ^ times_alpha(values[0], 32 * index)).to_bytes(16, "little")
        for index, value in enumerate(values)
    )
    if held.raw != relative:
        return False
    zeros = ctypes.create_string_buffer(1536)
    out = ctypes.create_string_buffer(1536)
    address = ctypes.addressof
    functions.whiten(address(held), address(zeros), address(out), 3)
    if out.raw != b"".join(masks(relative[at : at + 16]) for at in range(0, 48, 16)):
        return False
    functions.whiten(address(held), address(out), address(out), 3)
    return out.raw == bytes(1536)
