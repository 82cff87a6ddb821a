"""Whether NetBSD accepts a file system image: its rules on the superblocks
(tasks/formats/fsck_rules.py), and its checkers run on the image.

- Every file read back by The Sleuth Kit, a reader that is neither Linux's nor ours
  (readback.py).
- NetBSD's fsck -n through vnd(4) on a NetBSD host; e2fsck -fn elsewhere. fsck_ffs -n
  exits 0 even when it finds no superblock, so its output is judged too.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from tasks.site import BlockdevSpec
from tasks.tools import run

# --- fsck's output --------------------------------------------------------------------

PHASES = (
    "Phase 1 - Check Blocks and Sizes",
    "Phase 2 - Check Pathnames",
    "Phase 3 - Check Connectivity",
    "Phase 4 - Check Reference Counts",
    "Phase 5 - Check Cyl groups",
)
# pfatal()/badsb() messages, and a question fsck -n answered "no": each means a problem
_BAD = re.compile(
    r"BAD SUPER BLOCK|UNRESOLVED|CANNOT|CAN'T|UNEXPECTED (SOFT UPDATE )?INCONSISTENCY"
    r"|BAD MAGIC|BAD SUMMARY|\? no$|INCORRECT|IMPOSSIBLE|WRONG|NOT LABELED",
    re.M,
)


def fsck_output_problem(output: str, status: int) -> str | None:
    """NetBSD's fsck_ffs -n / fsck_ext2fs -n run judged on its status *and* its output:
    fsck_ffs -n exits 0 even when it finds no superblock at all."""
    bad = [line.strip() for line in output.splitlines() if _BAD.search(line.strip())]
    missing = [phase for phase in PHASES if f"** {phase}" not in output]
    if status == 0 and not bad and not missing:
        return None
    said = bad or [line.strip() for line in output.splitlines() if line.strip()][-3:]
    what = f"exit {status}" + (f", never reached {missing[0]}" if missing else "")
    return f"{what}: {'; '.join(said) or 'no output'}"


FSCK = {"ffs": "fsck_ffs", "ext2fs": "fsck_ext2fs"}


# e2fsck -fn's lines that say nothing is wrong: its passes and the closing count
_E2FSCK_QUIET = re.compile(r"^(Pass \d[A-Z]?: |e2fsck \d|.+: \d+/\d+ files )")
FIRST_LINES = 3  # of a checker's findings, in a message


def e2fsck_problem(image: Path, timeout: float | None = None) -> str | None:
    """e2fsck -fn judged on its status *and* its output: with primary group descriptors
    it finds corrupt, it checks through the backups and exits 0, while a kernel mounting
    the image would read the primary ones."""
    argv = ["e2fsck", "-fn", str(image)]
    done = run(argv, f"checking {image.name}", check=False, timeout=timeout, guest=True)
    output = (done.stdout + done.stderr).splitlines()
    said = [line.strip() for line in output if line.strip() and not _E2FSCK_QUIET.match(line)]
    if done.returncode == 0 and not said:
        return None
    return f"e2fsck -fn exit {done.returncode}: {'; '.join(said[:FIRST_LINES]) or 'no output'}"


def netbsd_fsck_problem(
    image: Path,
    fs: str,
    blockdev: BlockdevSpec,
    locks: Path,
    cgd_params: Path | None = None,
    timeout: float | None = None,
) -> str | None:
    """NetBSD's own fsck -n on the image, attached read-only to a vnd unit (needs root);
    with `cgd_params`, on the plaintext of the cgd(4) unit configured over it."""
    from tasks.blockdev.attach import attached

    tool = FSCK[fs]
    with attached(
        image,
        blockdev=blockdev,
        locks=locks,
        what=f"{tool} -n",
        readonly=True,
        cgd_params=cgd_params,
    ) as (_, attachment, _):
        device = Path(attachment.fs_device)
        done = run(
            [tool, "-n", str(device.with_name("r" + device.name))],
            f"{tool} -n",
            check=False,
            errors="replace",
            timeout=timeout,
        )
    return fsck_output_problem(done.stdout + done.stderr, done.returncode)


def on_netbsd() -> bool:
    return sys.platform.startswith("netbsd")
