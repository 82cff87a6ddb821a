"""The `fetch:NAME` tasks: sets and kernels given by URL, downloaded into the cache.

A task is up to date while its cached copy is the one the release's SHA512 file lists:
each run fetches that small file, and downloads the large one only when it changed. The
`root` task depends on the cached copies, so a new checksum rebuilds root.img.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from tasks.run.actions import Deferred
from tasks.sources.urls import Download

if TYPE_CHECKING:
    from tasks.run.build import Build

NAME = "fetch"
DOC = "sets and kernels given by URL, downloaded into the cache"


class Verified:
    """doit `uptodate` check: the cached copy matches the SHA512 file as it is now."""

    def __init__(self, download: Download) -> None:
        self.download = download

    def __call__(self, task, values) -> bool:
        from tasks.sources.fetch import up_to_date

        return up_to_date(self.download)


def tasks(build: Build) -> Iterator[dict[str, object]]:
    for download in build.site.root.downloads:
        yield task(download)


def task(download: Download) -> dict[str, object]:
    return {
        "name": download.path.name,
        "doc": f"{download.url}, checked against {download.sha512}",
        "actions": [(Deferred("tasks.sources.fetch:fetch"), [download])],
        "targets": [str(download.path)],
        "uptodate": [Verified(download)],
    }
