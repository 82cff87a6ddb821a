"""Benchmark: converging existing local images in place, as root.

A site of 20 domUs with ext2fs local images of 64 MiB, each holding 16 MiB of the
domU's own files. Reports medians over several runs of the wall time of `doit` when one
domU's rc.conf variable changes (one image converged) and when a default changes (all 20
converged with `doit -n 20` over a pool of 4 units), mounted through loop devices, and the
same through debugfs (blockdev.backend: none). Also the most loop devices seen at once.

    sudo .venv/bin/python bench/converge.py [--domus 20] [--units 4] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.mounting import loop_mounted, loops_under  # noqa: E402
from tests.sites import example_site  # noqa: E402

OUT = REPO / "bench" / "out" / "converge"
USER_DATA = 16 << 20


def write_site(directory: Path, domus: int, units: int, backend: str) -> Path:
    site = example_site()
    site["output"] = "build"
    site["defaults"]["local"] = {"size": "64m", "fs": "ext2fs"}
    site["defaults"]["pkg"] = {"size": "8m", "source": None}
    site["defaults"]["swap"] = {"size": "1m"}
    site["domains"] = {
        f"d{index:02d}": {"rc_conf": {"httpd": "YES"}} for index in range(1, domus + 1)
    }
    site["blockdev"] = {"backend": backend, "units": units}
    path = directory / "site.yaml"
    path.write_text(yaml.safe_dump(site, sort_keys=False))
    return path


def doit(path: Path, *args: str) -> tuple[float, str]:
    start = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "doit",
            "-f",
            str(REPO / "dodo.py"),
            "-d",
            str(REPO),
            f"config={path}",
            *args,
        ],
        capture_output=True,
        text=True,
    )
    elapsed = time.monotonic() - start
    if done.returncode != 0:
        sys.exit(f"doit failed:\n{done.stdout}\n{done.stderr}")
    return elapsed, done.stderr


def set_rc(path: Path, where: str, value: str) -> None:
    site = yaml.safe_load(path.read_text())
    target = site["defaults"] if where == "defaults" else site["domains"][where]
    target.setdefault("rc_conf", {})["ntpd"] = value
    path.write_text(yaml.safe_dump(site, sort_keys=False))


def plant(image: Path) -> None:
    with loop_mounted(image) as top:
        data = top / "var" / "db" / "bench"
        data.mkdir(parents=True)
        block = os.urandom(1 << 20)
        for index in range(USER_DATA >> 20):
            (data / f"f{index:02d}").write_bytes(block)


class Sampler:
    """The most loop devices attached below a directory at once, sampled every 5 ms."""

    def __init__(self, directory: Path) -> None:
        self.directory, self.most, self.running = directory, 0, True
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def run(self) -> None:
        while self.running:
            self.most = max(self.most, len(loops_under(self.directory)))
            time.sleep(0.005)

    def stop(self) -> int:
        self.running = False
        self.thread.join()
        return self.most


def converge_times(stderr: str) -> list[float]:
    return [float(t) for t in re.findall(r"converged \S+ \(\w+\) in ([\d.]+) s", stderr)]


def measure(backend: str, domus: int, units: int, runs: int, out: Path) -> dict[str, object]:
    directory = out / backend
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    path = write_site(directory, domus, units, backend)
    doit(path, "-n", "4")
    for index in range(1, domus + 1):
        plant(directory / "build" / "images" / f"d{index:02d}" / "local.img")
    one, one_inner, many, many_inner, most = [], [], [], [], 0
    for run in range(runs):
        set_rc(path, "d01", f"ONE{run}")
        elapsed, stderr = doit(path, "local:d01")
        one.append(elapsed)
        one_inner += converge_times(stderr)
        set_rc(path, "defaults", f"ALL{run}")
        sampler = Sampler(directory)
        elapsed, stderr = doit(path, "-n", str(domus), "local")
        most = max(most, sampler.stop())
        many.append(elapsed)
        many_inner.append(statistics.median(converge_times(stderr)))
    return {
        "one": statistics.median(one),
        "one_inner": statistics.median(one_inner),
        "many": statistics.median(many),
        "many_inner": statistics.median(many_inner),
        "most": most,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--domus", type=int, default=20)
    parser.add_argument("--units", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT, help="where the sites go")
    parser.add_argument("--smoke", action="store_true", help="2 domUs, 2 units, one run")
    args = parser.parse_args()
    if args.smoke:
        args.domus, args.units, args.runs = 2, 2, 1
    if os.geteuid() != 0:
        sys.exit("run as root: the mounted path attaches loop devices")
    rows = []
    for backend, label in (("auto", "mounted (loop)"), ("none", "debugfs")):
        result = measure(backend, args.domus, args.units, args.runs, args.out)
        rows.append(
            f"| {label} | {result['one']:.2f} s ({result['one_inner']:.3f} s) | "
            f"{result['many']:.2f} s ({result['many_inner']:.3f} s) | "
            f"{result['most']} |"
        )
    print(
        f"{args.domus} domUs, ext2fs local.img of 64 MiB with 16 MiB of the domU's files, "
        f"pool of {args.units} units, median of {args.runs} runs; wall time of the doit "
        "run (median time of one converge inside it)\n"
    )
    print(
        f"| path | one image | {args.domus} images, `doit -n {args.domus}` | "
        "most loop devices at once |"
    )
    print("|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
