"""The published images of a site, each held to NetBSD's file-system rules.

root.img and every pkg.img are checked through the stable links the xl configs name (the
active generation); each local.img as it is, an encrypted one opened with its key into a
private plain copy (mode 0600, in a directory of mode 0700) that is removed on every path.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tasks.blockdev.signals import sigterm_raises
from tasks.cgd.stream import decrypt_file
from tasks.checks import Finding
from tasks.checks.filesystem import check_image
from tasks.checks.room import room_finding
from tasks.errors import DomusError
from tasks.keyfiles import params_path
from tasks.keys import local_params
from tasks.site import DomU, Layout, Site
from tasks.superblocks import detect_fs


def _checked(path: Path, fs: str, subject: str, site: Site, layout: Layout) -> list[Finding]:
    if not path.exists():
        why = "a broken link to its generation" if path.is_symlink() else "missing"
        return [Finding(subject, "published", f"{why}; `./domus build` makes it")]
    return check_image(path, fs, subject, blockdev=site.blockdev, locks=layout.locks)


def _encrypted_local(site: Site, domu: DomU, layout: Layout) -> list[Finding]:
    image = layout.local_image(domu.name)
    subject = f"{domu.name}/local.img"
    if not image.exists():
        return [Finding(subject, "published", "missing; `./domus build` makes it")]
    try:
        params, passphrase = local_params(site.keys, domu)
    except DomusError as error:
        return [Finding(subject, "opens with its key", str(error))]
    # mkdtemp makes the directory 0700; beside the images, the plain copy never leaves
    # their file system; it goes with the directory however the block ends
    with (
        sigterm_raises(),
        tempfile.TemporaryDirectory(prefix=".domus-check-", dir=layout.images) as tmp,
    ):
        plain = Path(tmp) / "local.plain"
        fd = os.open(plain, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        try:
            decrypt_file(params, image, plain, passphrase=passphrase)
        except DomusError as error:
            return [Finding(subject, "opens with its key", str(error))]
        if detect_fs(plain) != domu.local.fs:
            return [
                Finding(
                    subject,
                    "opens with its key",
                    f"does not decrypt to {domu.local.fs} with {params_path(site.keys, domu.name)}:"
                    " a wrong key, or not the image the key was made for",
                )
            ]
        findings = [Finding(subject, "opens with its key")]
        return (
            findings
            + check_image(plain, domu.local.fs, subject, blockdev=site.blockdev, locks=layout.locks)
            + room_finding(plain, domu.local.fs, subject)
        )


def check_images(site: Site, layout: Layout) -> Iterator[Finding]:
    yield from _checked(layout.root_image, site.root.fs, "root.img", site, layout)
    for domu in site.domus:
        if not domu.local_encrypted:
            image = layout.local_image(domu.name)
            subject = f"{domu.name}/local.img"
            findings = _checked(image, domu.local.fs, subject, site, layout)
            yield from findings
            if all(finding.ok for finding in findings):
                yield from room_finding(image, domu.local.fs, subject)
        else:
            yield from _encrypted_local(site, domu, layout)
        pkg = layout.pkg_image(domu.name)
        yield from _checked(pkg, domu.pkg.fs, f"{domu.name}/pkg.img", site, layout)
        swap = layout.swap_image(domu.name)
        size = swap.stat().st_size if swap.exists() else None
        problem = None
        if size is None:
            problem = "missing; `./domus build` makes it"
        elif size != domu.swap.size:
            problem = f"{size} bytes, swap.size is {domu.swap.size}; `./domus build` remakes it"
        yield Finding(f"{domu.name}/swap.img", "published, of its size", problem)
