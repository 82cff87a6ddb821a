"""FFS images with NetBSD's makefs, from the staged tree and an mtree spec of the manifest.

FFSv1, little-endian: what makefs and NetBSD's own release images default to, and what
every NetBSD/Xen kernel mounts. `-x` keeps anything not in the manifest out of the image.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from tasks.errors import DomusError
from tasks.images.publish import host_full
from tasks.images.sparse import punch_zeros
from tasks.log import timed
from tasks.mtree import write_spec
from tasks.progress import tree_bytes
from tasks.sizes import format_size
from tasks.tools import run
from tasks.tree import Tree


def makefs_argv(
    spec: Path, size: int, dest: Path, staging: Path, order: str = "le", options: Sequence[str] = ()
) -> list[str]:
    """makefs writing the files of `spec` under `staging` into an FFSv1 image, little-endian
    unless `order` says "be"; `options`: more of makefs's FFS options (bsize=8192, ...)."""
    return ["makefs", "-t", "ffs", "-B", order, "-o", ",".join(["version=1", *options]),
            "-s", str(size), "-F", str(spec), "-x", str(dest), str(staging)]  # fmt: skip


def write_ffs(tree: Tree, size: int, dest: Path) -> None:
    spec = dest.with_name(dest.name + ".spec")
    write_spec(tree.walk(), spec)
    try:
        argv = makefs_argv(spec, size, dest, tree.staging)
        with timed(f"{dest.name}: makefs"):
            run(argv, f"{dest.name}", reads=tree_bytes(tree))
    except DomusError as error:
        if "No space left on device" in error.message:
            # the host's disk or the image's file system: only the host can tell
            raise host_full(dest, size, sure=False) or _too_small(dest, size) from error
        if re.search(r"too small|exceeds|larger than the maxsize|No space", error.message, re.I):
            raise _too_small(dest, size) from error
        raise
    finally:
        spec.unlink(missing_ok=True)
    with timed(f"{dest.name}: punch zeros"):
        punch_zeros(dest)


def _too_small(dest: Path, size: int) -> DomusError:
    return DomusError(
        f"{dest.name}: the files do not fit in {format_size(size)}",
        hint="raise the image's `size` in the site file",
    )
