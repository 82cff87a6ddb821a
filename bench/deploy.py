"""`./domus deploy` to three dom0s: time and bytes sent, first deploy and no-op deploys.

    .venv/bin/python bench/deploy.py [--per-host 30] [--runs 3]

The dom0s are the tests' stand-ins (tests/dom0s.py): an sshd each on a loopback port of
this machine, each with its own directory; needs sshd, rsync and ansible-core, and root
(sshd logs in as the user running it). The site is the example root and package with
`--per-host` domUs on each host (local.img ext2fs 16 MiB, swap 64 MiB). The no-op deploys
are timed as they run (each host asked once, no playbook) and with `--full` (the playbook
on every host all the same). Bytes sent are rsync's `Total bytes sent` over every transfer
(domus, inputs, generations), summed over the hosts; Ansible's own traffic (its modules,
the site file, keys) and the round trips are not counted. Writes only below a temporary
directory; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.dom0s import start_dom0s  # noqa: E402
from tests.sites import Site, example_site  # noqa: E402

HOSTS = ["alpha", "beta", "gamma"]


def deploy(site: Site, *options: str) -> tuple[float, int, int, str]:
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "tasks.cli", "deploy", *options, f"config={site.path}"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    seconds = time.monotonic() - start
    if done.returncode != 0:
        sys.exit(f"deploy failed:\n{done.stdout}{done.stderr}")
    # none when no host ran the playbook
    path = site.output / "deploy" / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    sent = sum(result["sent"] for result in results.values())
    files = sum(result["files"] for result in results.values())
    closing = done.stdout.strip().splitlines()[-1]
    return seconds, sent, files, closing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-host", type=int, default=30, help="domUs on each host")
    parser.add_argument("--runs", type=int, default=3, help="no-op deploys")
    parser.add_argument("--smoke", action="store_true", help="one domU a host, one no-op")
    args = parser.parse_args()
    if args.smoke:
        args.per_host, args.runs = 1, 1
    with tempfile.TemporaryDirectory(prefix="domus-bench-deploy-") as tmp:
        top = Path(tmp)
        dom0s = start_dom0s(top / "dom0s", HOSTS)
        try:
            data = example_site()
            data["dom0"] = "linux"
            data["blockdev"] = {"backend": "none"}
            data["defaults"]["local"] = {"size": "16m", "fs": "ext2fs"}
            data["defaults"]["swap"] = {"size": "64m"}
            data["hosts"] = {dom0.name: dom0.site_entry() for dom0 in dom0s}
            data["domains"] = {
                f"vm{host}{index:02d}": {"host": host}
                for host in HOSTS
                for index in range(args.per_host)
            }
            site = Site(top / "site", data)
            first = deploy(site)
            noop = [deploy(site) for _ in range(args.runs)]
            full = [deploy(site, "--full") for _ in range(args.runs)]
        finally:
            for dom0 in dom0s:
                dom0.stop()
    print(f"3 hosts x {args.per_host} domUs ({3 * args.per_host} domUs)\n")
    print("| deploy | time | bytes sent (rsync, all hosts) | files sent |")
    print("|---|---|---|---|")
    print(f"| first | {first[0]:.1f} s | {first[1]:,} | {first[2]} |")
    for what, runs in (("no-op", noop), ("no-op `--full`", full)):
        print(
            f"| {what} (median of {args.runs}) | "
            f"{statistics.median(run[0] for run in runs):.1f} s | "
            f"{statistics.median(run[1] for run in runs):,.0f} | "
            f"{max(run[2] for run in runs)} |"
        )
    print(f"\nfirst: {first[3]}\nno-op: {noop[-1][3]}\nno-op --full: {full[-1][3]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
