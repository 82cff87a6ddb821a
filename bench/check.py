"""Benchmark: `./domus check` and `./domus nightly` on a root of a release's size.

    .venv/bin/python bench/check.py [--files 20000] [--mib 440] [--domus 2] [--out DIR]
    .venv/bin/python bench/check.py --smoke --out DIR   (200 files, 4 MiB: that it runs)

Synthesizes a root tree of `--files` files holding `--mib` MiB in all (the example root
plus files of one size, 64 to a directory, each different), kept in `--out` for the next
run, and a site of `--domus` domUs over it. After the full build it times, through the
`./domus` script: a no-op build; a no-op nightly (the second after the build: the first
still reads the images the build just wrote); `./domus check` with nothing changed; one
`./domus check --all` with its peak memory (the largest RSS of any of its processes,
from getrusage of the children); and `cat` of the images check reads, to /dev/null, the
floor of any check that reads them. Run as root, cat and `check --all` are timed again
from a cold page cache (dropped before each), as a nightly after a day's other work meets
its images. Prints a Markdown table with each goal.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.run import EXAMPLE, write_site  # noqa: E402

MiB = 1 << 20


def synthesize_root(top: Path, files: int, mib: int) -> None:
    """The example root plus usr/share/bench/*: `files` files of equal size, each
    different so no file system shares their blocks."""
    stamp = top.with_name(f"{top.name}-{files}-{mib}.done")
    if stamp.exists():
        return
    if top.exists():
        shutil.rmtree(top)
    shutil.copytree(EXAMPLE / "root", top, symlinks=True)
    size = max(mib * MiB // files, 8)
    block = os.urandom(size)
    for index in range(files):
        directory = top / "usr" / "share" / "bench" / f"d{index // 64:04d}"
        if index % 64 == 0:
            directory.mkdir(parents=True, exist_ok=True)
        (directory / f"f{index:05d}").write_bytes(index.to_bytes(8, "little") + block[8:])
    stamp.write_text("")


@dataclass(frozen=True)
class Timing:
    seconds: float  # wall
    cpu: float  # user and system seconds of every process it ran (a busy machine's wall
    # time is mostly waiting for a core)
    rss_kib: int  # the largest of any process it ran
    output: str


MEASURE = """
import json, resource, subprocess, sys, time
start = time.monotonic()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
seconds = time.monotonic() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = usage.ru_utime + usage.ru_stime
print(json.dumps([seconds, cpu, usage.ru_maxrss, done.returncode, done.stdout, done.stderr]))
"""


def timed(*command: str) -> Timing:
    """`command`, measured by a python of its own (so none of this process's other
    children counts); it must succeed."""
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, *command], capture_output=True, text=True, cwd=REPO
    )
    seconds, cpu, rss, code, stdout, stderr = json.loads(done.stdout)
    if code != 0:
        sys.exit(f"{' '.join(command)} (exit {code}):\n{stdout}\n{stderr}")
    return Timing(seconds, cpu, rss, stdout)


def drop_page_cache() -> bool:
    """Whether the kernel's page cache could be emptied (root on Linux only)."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def domus(site: Path, *args: str) -> Timing:
    return timed(str(REPO / "domus"), *args, f"config={site}")


def images_checked(output: Path) -> list[Path]:
    """The images `./domus check` reads: root.img and each domU's local.img and pkg.img,
    links followed."""
    images = output / "images"
    found = [images / "root.img"]
    for domu in sorted(p for p in images.iterdir() if (p / "local.img").exists()):
        found += [domu / "local.img", domu / "pkg.img"]
    return [path.resolve() for path in found]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--mib", type=int, default=440)
    parser.add_argument("--domus", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "check")
    parser.add_argument("--smoke", action="store_true", help="200 files, 4 MiB: that it runs")
    args = parser.parse_args()
    if args.smoke:
        args.files, args.mib = 200, 4
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    synthesize_root(out / "root", args.files, args.mib)
    generated = time.monotonic() - start
    site_dir = out / "site"
    if site_dir.exists():
        shutil.rmtree(site_dir)
    site_dir.mkdir()
    site = write_site(site_dir, out / "root", args.domus, args.mib / 1024)
    build = domus(site, "build")
    noop = domus(site, "build")
    domus(site, "nightly")  # reads the images the build has just written
    nightly = domus(site, "nightly")
    if nightly.output:
        sys.exit(f"a nightly with nothing to do printed:\n{nightly.output}")
    cached = domus(site, "check")
    images = images_checked(site_dir / "build")
    cat = timed("sh", "-c", 'cat "$@" > /dev/null', "cat", *map(str, images))
    every = domus(site, "check", "--all")
    cold = drop_page_cache()
    if cold:
        cold_cat = timed("sh", "-c", 'cat "$@" > /dev/null', "cat", *map(str, images))
        drop_page_cache()
        cold_every = domus(site, "check", "--all")
    size = sum(path.stat().st_size for path in images) / MiB
    rss_mb = every.rss_kib * 1024 / 1e6
    load = os.getloadavg()

    def goal(held: bool) -> str:
        return "met" if held else "MISSED"

    def row(what: str, timing: Timing, goal: str = "", held: str = "") -> None:
        print(f"| {what} | {timing.seconds:.2f} | {timing.cpu:.2f} | {goal} | {held} |")

    print(
        f"root: {args.files} files, {args.mib} MiB (synthesized in {generated:.1f} s); "
        f"{args.domus} domUs; {len(images)} images checked, {size:.0f} MiB; "
        f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores\n"
    )
    print("| measurement | wall s | CPU s | goal | wall, CPU |")
    print("|---|---:|---:|---|---|")
    row("full build", build)
    row("no-op build", noop)
    held = f"{goal(nightly.seconds <= 10 * noop.seconds)}, {goal(nightly.cpu <= 10 * noop.cpu)}"
    row("no-op nightly", nightly, "at most 10 no-op builds", held)
    row("`check`, nothing changed", cached)
    row("`cat` of the images to /dev/null", cat)
    held = f"{goal(every.seconds <= 2 * cat.seconds)}, {goal(every.cpu <= 2 * cat.cpu)}"
    row("`check --all`", every, "at most twice cat", held)
    if cold:
        row("`cat`, cold page cache", cold_cat)
        held = (
            f"{goal(cold_every.seconds <= 2 * cold_cat.seconds)}, "
            f"{goal(cold_every.cpu <= 2 * cold_cat.cpu)}"
        )
        row("`check --all`, cold page cache", cold_every, "at most twice cat", held)
    else:
        print("| cold page cache | not measured: dropping it needs root on Linux | | | |")
    print(
        f"| `check --all`, peak RSS | {rss_mb:.0f} MB | | at most 400 MB | {goal(rss_mb <= 400)} |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
