"""What reading a guest's disk may cost: a domU writes its own local.img, and domus reads
it as root on the dom0, so each read of it is bounded in size, time and memory."""

from __future__ import annotations

import resource

from tasks.run.errors import DomusError

# converge.max_file_size's default, also for readers given no site (show, ls, diff)
from tasks.site.model import MAX_FILE_SIZE as MAX_FILE_SIZE
from tasks.site.sizes import MiB, format_size

# seconds a tool reading a guest's disk (debugfs, e2fsck, makefs on its files, resize2fs)
# may run: each does its work in seconds on a healthy image; a crafted one may loop
GUEST_TOOL_SECONDS = 600.0
# the address space such a tool may take: e2fsprogs keep bitmaps of a few bytes per block
# and inode, well under this for any local.img up to a few TiB
GUEST_TOOL_MEMORY = 2048 * MiB


def too_large(where: str, path: str, size: int, limit: int) -> DomusError:
    return DomusError(
        f"{where}: /{path} is {format_size(size)}, larger than converge.max_file_size "
        f"({format_size(limit)}); domus does not read it",
        hint="with the domU down, shrink or remove the file in its image (the domU wrote "
        "it), or raise converge.max_file_size",
    )


def limit_memory() -> None:
    """A preexec_fn: the tool about to run takes at most GUEST_TOOL_MEMORY (or the lower
    limit domus itself runs under)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = min(x for x in (soft, hard, GUEST_TOOL_MEMORY) if x != resource.RLIM_INFINITY)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
