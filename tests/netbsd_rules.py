"""The test oracle: NetBSD's own rules (tasks/formats/fsck_rules.py) applied to an image.

Every image a test builds or converges goes through `assert_netbsd_accepts`: an image that
passes Linux's tools but that NetBSD's fsck would refuse at boot fails the test.
"""

from __future__ import annotations

from pathlib import Path

from tasks.checks.images import check_image


def netbsd_problems(image: Path, fs: str) -> list[str]:
    return [f"{f.check}: {f.problem}" for f in check_image(image, fs) if not f.ok]


def assert_netbsd_accepts(image: Path, fs: str) -> None:
    problems = netbsd_problems(image, fs)
    assert not problems, f"NetBSD would refuse {image}:\n" + "\n".join(problems)
