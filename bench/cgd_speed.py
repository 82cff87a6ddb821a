"""How fast tasks.cgd encrypts, next to how fast the bare ciphers run.

cgd works per 512-byte sector, so the gap between the two columns is the cost of
driving the cipher sector by sector from Python; file rows add reading, writing and fsync.
Blowfish is measured at three key lengths only: its speed does not depend on the key length.
aes-xts ignores the iv-method, so it is measured once; a table of its own sets it, with C
and with numpy whitening, against bare AES-ECB and AES-XTS in wall and in CPU time, the
calls taken in turn so that a shared machine's load falls on all of them alike.

    .venv/bin/python bench/cgd_speed.py [--size-mib 64] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from cryptography.hazmat.decrepit.ciphers.algorithms import Blowfish, TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tasks.cgd import native
from tasks.cgd.ciphers import XtsCipher, make_cipher
from tasks.cgd.params import Params, StoredKey
from tasks.cgd.stream import decrypt_sectors, encrypt_file, encrypt_sectors
from tasks.cgd.table import CIPHERS

MB = 1_000_000
BLOWFISH_KEYLENGTHS = (40, 128, 448)


def settings() -> Iterator[tuple[str, int, str]]:
    for name, info in CIPHERS.items():
        if not info.supported:
            continue
        keylengths = BLOWFISH_KEYLENGTHS if name == "blowfish-cbc" else info.keylengths
        iv_methods = ("encblkno1",) if name == "aes-xts" else ("encblkno1", "encblkno8")
        for bits in keylengths:
            for iv_method in iv_methods:
                yield name, bits, iv_method


def best_rate(size: int, runs: int, work: Callable[[], object]) -> float:
    """Best MB/s of `runs` timed calls: on a shared machine the others' load only slows."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return size / MB / min(times)


def best_rates(size: int, runs: int, cases: dict[str, Callable[[], object]]) -> dict[str, tuple]:
    """Best MB/s of wall and of process CPU time of each case, the cases run in turn."""
    best = {label: [float("inf"), float("inf")] for label in cases}
    for _ in range(runs):
        for label, work in cases.items():
            wall, cpu = time.perf_counter(), time.process_time()
            work()
            times = best[label]
            times[0] = min(times[0], time.perf_counter() - wall)
            times[1] = min(times[1], time.process_time() - cpu)
    return {label: (size / MB / wall, size / MB / cpu) for label, (wall, cpu) in best.items()}


def xts_rows(size: int, runs: int) -> list[str]:
    data = os.urandom(size)
    out = bytearray(size + 16)
    piece = 4 << 20  # OpenSSL's XTS takes at most 16 MiB per data unit
    whitenings = {"C": True, "numpy": False} if native.whitening() else {"numpy": False}
    rows = [
        "| aes-xts key bits | what | MB/s | MB/s of CPU time | CPU time, share of AES-ECB's |",
        "|---:|---|---:|---:|---:|",
    ]
    for bits in (256, 512):
        key = os.urandom(bits // 8)
        half = algorithms.AES(key[: bits // 16])

        def ecb(half: algorithms.AES = half) -> None:
            Cipher(half, modes.ECB()).encryptor().update_into(data, out)

        def xts(key: bytes = key) -> None:
            encryptor = Cipher(algorithms.AES(key), modes.XTS(bytes(16))).encryptor()
            view = memoryview(data)
            for at in range(0, size, piece):
                encryptor.update_into(view[at : at + piece], memoryview(out)[at:])

        cases: dict[str, Callable[[], object]] = {}
        for name, flag in whitenings.items():
            cipher = XtsCipher(key, native=flag)
            encrypted = bytes(cipher.encrypt(data, 0))
            cases[f"encrypt, {name} whitening"] = lambda c=cipher: c.encrypt(data, 0)
            cases[f"decrypt, {name} whitening"] = lambda c=cipher, e=encrypted: c.decrypt(e, 0)
        cases[f"bare AES-{bits // 2}-ECB, output preallocated"] = ecb
        cases[f"bare AES-{bits // 2}-XTS, one tweak, output preallocated"] = xts
        rates = best_rates(size, runs, cases)
        ecb_cpu = rates[f"bare AES-{bits // 2}-ECB, output preallocated"][1]
        for label, (wall, cpu) in rates.items():
            rows.append(f"| {bits} | {label} | {wall:.0f} | {cpu:.0f} | {cpu / ecb_cpu:.0%} |")
            print(rows[-1], file=sys.stderr, flush=True)
    return rows


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def cgd_rows(size: int, runs: int, workdir: Path, *, most: int | None = None) -> list[str]:
    plain = os.urandom(size)
    src, dst = workdir / "plain.img", workdir / "enc.img"
    src.write_bytes(plain)
    cpus = usable_cpus()
    rows = [
        "| algorithm | key bits | iv-method | encrypt, memory | decrypt, memory "
        f"| encrypt, file, 1 job | encrypt, file, {cpus} jobs |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for name, bits, iv_method in list(settings())[:most]:
        key = os.urandom(bits // 8)
        cipher = make_cipher(name, key, iv_method)
        params = Params(name, iv_method, bits, "none", (StoredKey(key),))
        encrypted = encrypt_sectors(cipher, plain, 0)
        rates = [
            best_rate(size, runs, lambda c=cipher: encrypt_sectors(c, plain, 0)),
            best_rate(size, runs, lambda c=cipher, e=encrypted: decrypt_sectors(c, e, 0)),
            best_rate(size, runs, lambda p=params: encrypt_file(p, src, dst, jobs=1)),
            best_rate(size, runs, lambda p=params: encrypt_file(p, src, dst, jobs=cpus)),
        ]
        cells = " | ".join(f"{rate:.0f}" for rate in rates)
        rows.append(f"| {name} | {bits} | {iv_method} | {cells} |")
        print(rows[-1], file=sys.stderr, flush=True)
    return rows


def raw_rows(size: int, runs: int) -> list[str]:
    data = os.urandom(size)
    piece = 4 << 20  # OpenSSL's XTS takes at most 16 MiB per data unit

    def whole(algorithm: object, mode: object) -> Callable[[], object]:
        def run() -> None:
            encryptor = Cipher(algorithm, mode).encryptor()  # type: ignore[arg-type]
            view = memoryview(data)
            for at in range(0, size, piece):
                encryptor.update(view[at : at + piece])

        return run

    cases = [
        ("AES-128-XTS (aes-xts 256), one tweak", algorithms.AES(os.urandom(32)), "xts"),
        ("AES-256-XTS (aes-xts 512), one tweak", algorithms.AES(os.urandom(64)), "xts"),
        ("AES-128-CBC, one IV", algorithms.AES(os.urandom(16)), "cbc"),
        ("AES-256-CBC, one IV", algorithms.AES(os.urandom(32)), "cbc"),
        ("AES-256-ECB", algorithms.AES(os.urandom(32)), "ecb"),
        ("3DES-CBC, one IV", TripleDES(os.urandom(24)), "cbc"),
        ("Blowfish-128-CBC, one IV", Blowfish(os.urandom(16)), "cbc"),
    ]

    def ecb(key: bytes) -> Callable[[], object]:
        # the bare cipher over the same bytes in one call, into a buffer made beforehand:
        # AES's own speed, without the allocation of its output
        out = bytearray(size + 16)
        return lambda: Cipher(algorithms.AES(key), modes.ECB()).encryptor().update_into(data, out)

    rows = ["| bare cipher (one stream, no sectors) | encrypt MB/s |", "|---|---:|"]
    for bits in (128, 256):
        rate = best_rate(size, runs, ecb(os.urandom(bits // 8)))
        rows.append(f"| AES-{bits}-ECB, whole buffer, output preallocated | {rate:.0f} |")
    for label, algorithm, kind in cases:
        if kind == "xts":
            mode: object = modes.XTS(bytes(16))
        elif kind == "cbc":
            mode = modes.CBC(bytes(algorithm.block_size // 8))
        else:
            mode = modes.ECB()
        rows.append(f"| {label} | {best_rate(size, runs, whole(algorithm, mode)):.0f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--smoke", action="store_true", help="64 KiB, one run, one cgd cipher: that it runs"
    )
    args = parser.parse_args()
    size = args.size_mib << 20
    if args.smoke:
        size, args.runs = 64 << 10, 1
    with tempfile.TemporaryDirectory(prefix="cgd-speed.") as workdir:
        cgd = cgd_rows(size, args.runs, Path(workdir), most=1 if args.smoke else None)
    raw = raw_rows(size, args.runs)
    xts = xts_rows(size, args.runs)
    print(f"{size / (1 << 20):g} MiB, best of {args.runs} runs, MB/s = 10^6 bytes/s\n")
    print("\n".join(cgd))
    print()
    print("\n".join(raw))
    print()
    print("\n".join(xts))
    print(f"\nload average at the end: {' '.join(f'{n:.1f}' for n in os.getloadavg())}")


if __name__ == "__main__":
    main()
