"""One converge, run as its own process by the tests, with a clock around the mounted part.

    python -m tests.converge_job SITE NAME LOG slow SECONDS
        converge NAME; while the image is mounted, wait SECONDS before writing, and log
        [start, end, mount point] of that mounted stretch to LOG
    python -m tests.converge_job SITE NAME LOG stall
        converge NAME's first changed file only, then write LOG and wait to be killed

It takes the image lock and calls tasks.converge.local.converge, as `./domus build` and
`./domus converge` do; only the write step is wrapped, to widen and time it.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from tasks.converge import mounted
from tasks.converge.local import converge
from tasks.kinds.local import context as local_context
from tasks.render import Templates
from tasks.run.locks import image_lock
from tasks.site import load_site


def main(site_path: str, name: str, log: str, mode: str, seconds: str = "0") -> None:
    original = mounted.MountedFiles.apply

    def slow(self, changes, stamp, keep):
        start = time.monotonic()
        time.sleep(float(seconds))
        backups = original(self, changes, stamp, keep)
        with open(log, "a") as out:
            out.write(json.dumps([start, time.monotonic(), str(self.top)]) + "\n")
        return backups

    def stall(self, changes, stamp, keep):
        original(self, changes[:1], stamp, keep)
        Path(log).write_text(str(self.top))
        time.sleep(600)

    mounted.MountedFiles.apply = slow if mode == "slow" else stall
    site = load_site(Path(site_path))
    layout = site.layout
    domu = next(domu for domu in site.domus if domu.name == name)
    with image_lock(layout.locks, layout.local_image(name)):
        converge(
            site, domu, layout, Templates(site.templates), local_context(site, domu), dry_run=False
        )


if __name__ == "__main__":
    main(*sys.argv[1:])
