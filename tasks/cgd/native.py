"""aes-xts's whitening in C (xts_whiten.c), built with the host's compiler on first use.

aes-xts is AES-ECB between two XORs with every block's mask T * alpha^j. numpy builds those
masks in several passes over memory and spends far more time on them than AES takes; the C
function makes them in registers (bench/README.md has the numbers). It is compiled once
into __pycache__ beside this file, as Python caches bytecode, under a name made from the
source, the compiler command and the machine, so an edited source never runs stale; and it
is checked against the definition before use. Where no compiler works, the directory cannot
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

SOURCE = Path(__file__).with_name("xts_whiten.c")
CACHE = SOURCE.with_name("__pycache__")
FLAGS = ("-O2", "-shared", "-fPIC")
BUILD_SECONDS = 120

# cgd_xts_whiten(tweaks, in, out, sectors): addresses, then a count; in may be out
Whiten = Callable[[int, int, int, int], None]


@functools.cache
def whitening() -> Whiten | None:
    """The C whitening, built or loaded once a process; None where it cannot be had."""
    return build(CACHE)


def build(cache: Path, compiler: str | None = None) -> Whiten | None:
    """Build (unless already built) and load the whitening in `cache`; $CC or cc compiles."""
    command = [*shlex.split(compiler or os.environ.get("CC") or "cc"), *FLAGS]
    source = SOURCE.read_bytes()
    digest = hashlib.sha256(source)
    digest.update("\0".join([*command, platform.machine()]).encode())
    library = cache / f"xts_whiten-{digest.hexdigest()[:16]}.so"
    if not library.exists() and not _compile(command, library):
        return None
    try:
        function = ctypes.CDLL(str(library)).cgd_xts_whiten
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    function.restype = None
    return function if agrees(function) else None


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


def masks(tweak: bytes) -> bytes:
    """The 32 masks T * alpha^j of a sector, from IEEE 1619's definition on integers."""
    value = int.from_bytes(tweak, "little")
    out = []
    for _ in range(32):
        out.append(value.to_bytes(16, "little"))
        value = (value << 1 ^ (0x87 if value >> 127 else 0)) & ((1 << 128) - 1)
    return b"".join(out)


def agrees(whiten: Whiten) -> bool:
    """Whether `whiten` makes IEEE 1619's masks, into another buffer and in place.

    The tweaks are all ones (every fold taken at every step) and a fixed arbitrary one."""
    tweaks = b"\xff" * 16 + hashlib.sha256(b"cgd aes-xts").digest()[:16]
    held = ctypes.create_string_buffer(tweaks, 32)
    zeros = ctypes.create_string_buffer(1024)
    out = ctypes.create_string_buffer(1024)
    address = ctypes.addressof
    whiten(address(held), address(zeros), address(out), 2)
    if out.raw != masks(tweaks[:16]) + masks(tweaks[16:]):
        return False
    whiten(address(held), address(out), address(out), 2)
    return out.raw == bytes(1024)
