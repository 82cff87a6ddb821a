"""Benchmark: converging an FFS local.img by rewriting it (tasks/converge/rewrite.py), against
makefs alone on the same tree.

For each size, a tree half the image's size (files of 1 MiB of random bytes, and 2,000
small ones of up to 4 KiB in 20 directories) is made into an FFSv1 image with makefs, as
domus builds a local.img. Then, `--runs` times: the rewrite converge of one managed file
(/etc/rc.conf), the whole of it: reading and checking the image, staging every entry,
makefs, the inode fields, the verification, punching zeros, fsync and rename; and makefs
alone on the original tree with its spec. Prints a Markdown table of medians, with the
rewrite's own phases (DOMUS_DEBUG timings) for the last run.

    .venv/bin/python bench/ffs_rewrite.py [--sizes 64m,1g,2g] [--runs 3] [--dir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ["DOMUS_DEBUG"] = "1"

from tasks.converge.plan import Change, FileState  # noqa: E402
from tasks.converge.rewrite import kept_images, opened  # noqa: E402
from tasks.images.ffs_reader import FfsImage  # noqa: E402
from tasks.site.sizes import parse_size  # noqa: E402

MiB = 1 << 20
SMALL = 2000


def make_tree(top: Path, size: int) -> Path:
    """Half of `size` in files under `top`; returns the mtree spec beside it."""
    lines = [". type=dir uid=0 gid=0 mode=0755"]
    rng = random.Random(size)
    for directory in ("etc", "var", "var/big", "var/small"):
        (top / directory).mkdir(parents=True)
        lines.append(f"./{directory} type=dir uid=0 gid=0 mode=0755")
    (top / "etc/rc.conf").write_text("hostname=bench\nhttpd=YES\n")
    lines.append("./etc/rc.conf type=file uid=0 gid=0 mode=0644")
    written = 0
    for index in range(SMALL):
        folder = f"var/small/d{index // 100:02d}"
        if index % 100 == 0:
            (top / folder).mkdir()
            lines.append(f"./{folder} type=dir uid=0 gid=0 mode=0755")
        data = rng.randbytes(index % 4096)
        (top / folder / f"f{index}").write_bytes(data)
        lines.append(f"./{folder}/f{index} type=file uid=1000 gid=100 mode=0644")
        written += len(data)
    index = 0
    while written < size // 2 - MiB:
        folder = f"var/big/d{index // 64:03d}"
        if index % 64 == 0:
            (top / folder).mkdir()
            lines.append(f"./{folder} type=dir uid=0 gid=0 mode=0755")
        (top / folder / f"b{index}").write_bytes(os.urandom(MiB))
        lines.append(f"./{folder}/b{index} type=file uid=0 gid=0 mode=0600")
        written += MiB
        index += 1
    spec = top.parent / "spec"
    spec.write_text("#mtree v2.0\n" + "\n".join(lines) + "\n")
    return spec


def makefs(spec: Path, size: int, image: Path, tree: Path) -> float:
    image.unlink(missing_ok=True)
    start = time.monotonic()
    done = subprocess.run(
        ["makefs", "-t", "ffs", "-B", "le", "-o", "version=1", "-s", str(size), "-F", str(spec),
         "-x", str(image), str(tree)],
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        sys.exit(f"makefs failed: {done.stdout[-500:]}{done.stderr[-500:]}")
    return time.monotonic() - start


def rewrite(image: Path, run: int) -> tuple[float, str]:
    """One rewrite converge of /etc/rc.conf; its wall time and DOMUS_DEBUG's phases."""
    log = io.StringIO()
    start = time.monotonic()
    with contextlib.redirect_stderr(log), opened(image, keep_images=0) as files:
        old = files.read_all(["etc/rc.conf"])["etc/rc.conf"]
        assert old is not None
        new = FileState(old.data + f"# run {run}\n".encode(), old.mode, old.uid, old.gid)
        files.apply([Change("etc/rc.conf", old, new)], f"20261202T{run:06d}", 1)
    return time.monotonic() - start, log.getvalue()


def phases(log: str) -> str:
    found = re.findall(r"local\.img: ([a-z ]+): ([\d.]+) s", log)
    return ", ".join(f"{name} {float(seconds):.1f}" for name, seconds in found)


def bench(size: int, runs: int, where: Path) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="ffs-rewrite-", dir=where))
    try:
        tree = work / "tree"
        spec = make_tree(tree, size)
        image = work / "local.img"
        makefs(spec, size, image, tree)
        with FfsImage(image) as ffs:
            used = ffs.params.size - ffs.free_bytes()
            entries = sum(1 for _ in ffs.entries())
        alone = [makefs(spec, size, work / "alone.img", tree) for _ in range(runs)]
        (work / "alone.img").unlink()
        timings, log = [], ""
        for run in range(runs):
            seconds, log = rewrite(image, run)
            timings.append(seconds)
        assert kept_images(image) == []
        return {
            "size": size,
            "used": used,
            "entries": entries,
            "rewrite": statistics.median(timings),
            "makefs": statistics.median(alone),
            "phases": phases(log),
        }
    finally:
        shutil.rmtree(work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="64m,1g,2g")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=REPO / "bench" / "out")
    parser.add_argument("--smoke", action="store_true", help="one image of 16 MiB, one run")
    args = parser.parse_args()
    if args.smoke:
        args.sizes, args.runs = "16m", 1
    args.dir.mkdir(parents=True, exist_ok=True)
    print("| local.img | used | entries | rewrite converge, s | makefs alone, s | ratio | "
          "phases of the last rewrite, s |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---|")
    for text in args.sizes.split(","):
        result = bench(parse_size(text), args.runs, args.dir)
        print(
            f"| {text} | {int(result['used']) / MiB:.0f} MiB | {result['entries']} | "  # type: ignore[call-overload]
            f"{result['rewrite']:.2f} | {result['makefs']:.2f} | "
            f"{float(result['rewrite']) / float(result['makefs']):.1f} | {result['phases']} |",  # type: ignore[arg-type]
            flush=True,
        )


if __name__ == "__main__":
    main()
