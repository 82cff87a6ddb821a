"""Benchmark: a site of 100 domUs over a generated root tree of about 1 GB.

Reports medians over several runs of: the full build, a no-op run, one template change,
one domU change, makefs alone on the same staged root tree (our overhead as a ratio), a
nightly run with nothing to do, one after a package change, and rollbacks.
`--builds-only` stops after the full build and the no-op runs: the nightly runs check
every image, which takes minutes for 100 domUs on a busy machine.
`--instant 100,1000` instead builds a site of each size with `./domus build` and times, through
the `./domus` script as cron runs it, a no-op build and `./domus status` (table and JSON), plain
doit's no-op run for comparison, and status after one domU's key changed.

    .venv/bin/python bench/run.py [--domus 100] [--gigabytes 1.0] [--runs 3] [--builds-only]
    .venv/bin/python bench/run.py --instant 100,1000 [--gigabytes 0] [--runs 9]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "config" / "example"
OUT = REPO / "bench" / "out"
FILE_SIZE = 256 << 10


def generate_root(top: Path, gigabytes: float) -> None:
    """The example root plus usr/lib/bench/*: files of 256 KiB, 64 to a directory."""
    stamp = top.with_name(f"root-{gigabytes}.done")
    if stamp.exists():
        return
    if top.exists():
        shutil.rmtree(top)
    shutil.copytree(EXAMPLE / "root", top, symlinks=True)
    count = int(gigabytes * (1 << 30)) // FILE_SIZE
    block = os.urandom(FILE_SIZE)
    for index in range(count):
        directory = top / "usr" / "lib" / "bench" / f"d{index // 64:03d}"
        directory.mkdir(parents=True, exist_ok=True)
        # Each file differs, as real files do: no file system can share their blocks.
        (directory / f"f{index:05d}").write_bytes(index.to_bytes(8, "little") + block[8:])
    stamp.write_text("")


def write_site(directory: Path, root: Path, domus: int, gigabytes: float) -> Path:
    size_mb = int(gigabytes * 1024 * 1.15) + 64
    site = {
        "output": "build",
        "root": {
            "source": {"tree": str(root), "metalog": str(EXAMPLE / "root.metalog")},
            "kernel": str(EXAMPLE / "netbsd-XEN3_DOMU"),
            "size": f"{size_mb}m",
        },
        "defaults": {
            "local": {"size": "16m"},
            "pkg": {
                "size": "8m",
                "source": {"packages": [str(EXAMPLE / "packages" / "domus-motd-1.0.tgz")]},
            },
            "swap": {"size": "256m"},
        },
        "domains": {
            f"vm{i:03d}": {
                "rc_conf": {"ifconfig_xennet0": f"inet 10.0.{i // 250}.{i % 250 + 1}/16"}
            }
            for i in range(domus)
        },
    }
    path = directory / "site.yaml"
    path.write_text(yaml.safe_dump(site, sort_keys=False))
    return path


def doit(site: Path, *args: str, makefs_seconds: list[float] | None = None) -> float:
    """Wall time of a doit run; with `makefs_seconds`, the time makefs took inside it is
    appended there (from the DOMUS_DEBUG step timings)."""
    os.sync()  # earlier runs' write-back must not land in this one's time
    env = dict(os.environ, DOMUS_DEBUG="1") if makefs_seconds is not None else None
    start = time.monotonic()
    done = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "doit"),
            "-f",
            str(REPO / "dodo.py"),
            f"config={site}",
            *args,
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
    )
    elapsed = time.monotonic() - start
    if done.returncode != 0:
        sys.exit(f"doit {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    if makefs_seconds is not None:
        makefs_seconds.extend(float(s) for s in re.findall(r": makefs: ([0-9.]+) s", done.stderr))
    return elapsed


def command(site: Path, module: str, *args: str, quiet: bool = False) -> float:
    """`python -m module args config=site` (a ./domus command), timed; `quiet`: it must
    print nothing (a nightly run with nothing to do)."""
    os.sync()
    start = time.monotonic()
    done = subprocess.run(
        [str(REPO / ".venv" / "bin" / "python"), "-m", module, *args, f"config={site}"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    elapsed = time.monotonic() - start
    if done.returncode != 0 or (quiet and done.stdout + done.stderr):
        sys.exit(
            f"{module} {' '.join(args)} (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
    return elapsed


def script(site: Path, *args: str) -> float:
    """`./domus args config=site`, the script included, timed; it must succeed."""
    start = time.monotonic()
    done = subprocess.run(
        [str(REPO / "domus"), *args, f"config={site}"], capture_output=True, text=True
    )
    elapsed = time.monotonic() - start
    if done.returncode != 0:
        sys.exit(f"./domus {' '.join(args)} (exit {done.returncode}):\n{done.stderr}")
    return elapsed


def instant(sizes: list[int], gigabytes: float, runs: int, out: Path) -> None:
    """No-op build and status times of sites of each size, medians of `runs`."""
    root = out / "root"
    generate_root(root, gigabytes)
    rows: dict[str, list[str]] = {
        "`./domus build`, nothing to do": [],
        "`./domus status` (table)": [],
        "`./domus status --json`": [],
        "plain `doit`, nothing to do (declares and checks every task)": [],
        "`./domus status` after one domU's key changed": [],
    }
    for count in sizes:
        work = out / f"instant-{count}"
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
        site = write_site(work, root, count, gigabytes)
        script(site, "build")
        script(site, "build")  # recorded: the first run after the build made every image
        times = [
            [script(site, "build") for _ in range(runs)],
            [script(site, "status") for _ in range(runs)],
            [script(site, "status", "--json") for _ in range(runs)],
            [doit(site) for _ in range(runs)],
        ]
        script(site, "build")  # plain doit does not record the run: the record again
        data = yaml.safe_load(site.read_text())
        data["domains"]["vm007"]["memory"] = "512m"
        site.write_text(yaml.safe_dump(data, sort_keys=False))
        times.append([script(site, "status") for _ in range(runs)])
        for row, samples in zip(rows.values(), times, strict=True):
            row.append(f"{median(samples):.3f}")
    print(f"root tree {gigabytes:g} GB, median of {runs} runs, seconds\n")
    print("| | " + " | ".join(f"{count} domUs" for count in sizes) + " |")
    print("|---|" + "---:|" * len(sizes))
    for label, values in rows.items():
        print(f"| {label} | " + " | ".join(values) + " |")


def makefs_alone(build: Path, size: str, durable: bool) -> float:
    """makefs on the staged root tree with the same spec, writing the same kind of image;
    with `durable`, followed by what every published image gets: holes punched, fsync."""
    sys.path.insert(0, str(REPO))
    from tasks.formats.mtree import write_spec
    from tasks.images.ffs import makefs_argv
    from tasks.images.sparse import punch_zeros
    from tasks.images.tree import Tree
    from tasks.site.sizes import parse_size

    tree = Tree.load(build / "stage" / "root", build / "stage" / "root.manifest.json")
    spec, image = build / "bench.spec", build / "bench.img"
    write_spec(tree.walk(), spec)
    os.sync()
    start = time.monotonic()
    subprocess.run(
        makefs_argv(spec, parse_size(size), image, tree.staging),
        check=True,
        capture_output=True,
    )
    if durable:
        punch_zeros(image)
        fd = os.open(image, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    elapsed = time.monotonic() - start
    image.unlink()
    spec.unlink()
    return elapsed


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domus", type=int, default=100)
    parser.add_argument("--gigabytes", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--builds-only", action="store_true", help="only the full build and the no-op runs"
    )
    parser.add_argument(
        "--instant",
        metavar="N,N",
        help="only no-op build and status times, for sites of these many domUs",
    )
    parser.add_argument("--out", type=Path, default=OUT, help="where the root and sites go")
    parser.add_argument(
        "--smoke", action="store_true", help="8 domUs, the example root alone, one run"
    )
    args = parser.parse_args()
    if args.smoke:
        args.domus, args.gigabytes, args.runs = 8, 0.0, 1
    if args.instant:
        instant([int(n) for n in args.instant.split(",")], args.gigabytes, args.runs, args.out)
        return

    args.out.mkdir(parents=True, exist_ok=True)
    root = args.out / "root"
    generate_root(root, args.gigabytes)
    work = args.out / "site"
    results: dict[str, list[float]] = {
        k: []
        for k in [
            "full",
            "noop",
            "template",
            "domu",
            "root",
            "makefs",
            "makefs_fsync",
            "nightly",
            "pkg",
            "rollback_root",
            "rollback_pkg",
            "makefs_inside",
        ]
    }
    for _ in range(args.runs):
        if work.exists():
            shutil.rmtree(work)
        work.mkdir()
        site = write_site(work, root, args.domus, args.gigabytes)
        build = work / "build"
        results["full"].append(doit(site))
        for _ in range(3):
            results["noop"].append(doit(site))
        if args.builds_only:
            continue
        templates = work / "templates" / "xen"
        templates.mkdir(parents=True)
        xl = (REPO / "templates" / "xen" / "domu.cfg").read_text()
        (templates / "domu.cfg").write_text(xl + "# changed\n")
        data = yaml.safe_load(site.read_text())
        data["templates"] = str(work / "templates")
        site.write_text(yaml.safe_dump(data, sort_keys=False))
        results["template"].append(doit(site))
        data["domains"]["vm007"]["memory"] = "512m"
        site.write_text(yaml.safe_dump(data, sort_keys=False))
        results["domu"].append(doit(site))
        hooks = work / "templates" / "root" / "etc"
        hooks.mkdir(parents=True)
        for index in range(2):
            # a new input: a generation from the same inputs would be reused, not built
            builtin = (REPO / "templates" / "root" / "etc" / "rc.pre-hooks").read_text()
            (hooks / "rc.pre-hooks").write_text(builtin + f"# bench {index}\n")
            results["root"].append(doit(site, "root", makefs_seconds=results["makefs_inside"]))
            results["makefs"].append(makefs_alone(build, data["root"]["size"], durable=False))
            results["makefs_fsync"].append(makefs_alone(build, data["root"]["size"], True))

        command(site, "tasks.nightly")  # whatever the runs above left, and garbage collection
        for _ in range(3):
            results["nightly"].append(command(site, "tasks.nightly", quiet=True))
        data["defaults"]["pkg"]["size"] = "12m"
        site.write_text(yaml.safe_dump(data, sort_keys=False))
        results["pkg"].append(command(site, "tasks.nightly"))
        results["rollback_root"].append(command(site, "tasks.generations", "rollback", "root"))
        results["rollback_pkg"].append(command(site, "tasks.generations", "rollback", "pkg"))

    files = sum(1 for _ in root.rglob("*"))
    print(
        f"{args.domus} domUs, root tree {args.gigabytes:g} GB in {files} entries, "
        f"median of {args.runs} runs (no-op: of {3 * args.runs})\n"
    )
    print("| measurement | seconds |")
    print("|---|---|")
    rows = [
        ("full build (root + 100 x local, pkg, swap, xl)", "full"),
        ("no-op run", "noop"),
        ("one template changed (xl config: 100 configs)", "template"),
        ("one domU changed (memory: its xl config)", "domu"),
        ("root.img alone (a root template changed: `doit root`, whole process)", "root"),
        ("makefs alone on the same staged tree", "makefs"),
        ("makefs alone, then holes punched and fsync", "makefs_fsync"),
        ("`./domus nightly` with nothing to do", "nightly"),
        ("`./domus nightly` after a pkg change (one pkg.img, 100 activations)", "pkg"),
        ("`./domus rollback root`", "rollback_root"),
        ("`./domus rollback pkg` (100 pkg.img)", "rollback_pkg"),
    ]
    for label, key in rows:
        if results[key]:
            print(f"| {label} | {median(results[key]):.3f} |")
    if args.builds_only:
        return
    root = median(results["root"])
    # makefs's own time swings with the page cache's write-back between runs; against the
    # makefs of the same run, what remains is our own overhead
    in_run = [r / m for r, m in zip(results["root"], results["makefs_inside"], strict=True)]
    print(
        f"\nroot.img build / makefs alone: {root / median(results['makefs']):.2f}x; "
        f"/ makefs, holes and fsync: {root / median(results['makefs_fsync']):.2f}x; "
        f"/ makefs inside the same run ({median(results['makefs_inside']):.3f} s): "
        f"{median(in_run):.2f}x"
    )


if __name__ == "__main__":
    main()
