"""The published images of a site, each held to NetBSD's file-system rules.

root.img and every pkg.img are checked through the stable links the xl configs name (the
active generation); each local.img as it is, an encrypted one opened with its key into a
private plain copy (tasks/images/plaintext.py) that is removed on every path. Any other
image a kind gives the domUs as a disk (tasks.kinds.xen) is checked to be published.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from tasks.blockdev.signals import sigterm_raises
from tasks.cgd.keyfiles import params_path, passphrase_path
from tasks.cgd.keys import local_params
from tasks.cgd.stream import decrypt_file
from tasks.checks import Finding
from tasks.checks.filesystem import FSCK, e2fsck_problem, netbsd_fsck_problem, on_netbsd
from tasks.checks.readback import read_back_problems
from tasks.checks.room import room_finding
from tasks.checks.verdicts import Verdicts
from tasks.formats.fsck_rules import LINUX_MOUNT_MARKS, ext2_problem, ffs_problems, image_bytes
from tasks.formats.superblocks import detect_fs
from tasks.images.plaintext import private_dir
from tasks.kinds.xen import disks
from tasks.run.errors import DomusError
from tasks.site import BlockdevSpec, DomU, Layout, Site
from tasks.xl import running_domains

SKIPPED = "its domU runs (xl list): checked when it is shut down"


def check_image(
    path: Path,
    fs: str,
    subject: str | None = None,
    *,
    blockdev: BlockdevSpec | None = None,
    locks: Path | None = None,
) -> list[Finding]:
    """Every file-system check of one plain (unencrypted) image; on a NetBSD host, as root
    and given the site's blockdev settings and lock directory, NetBSD's own fsck too."""
    subject = subject or str(path)
    found = detect_fs(path)
    if found != fs:
        return [
            Finding(
                subject,
                "file system",
                f"holds {found or 'no ffs or ext2fs file system'}, not {fs}",
            )
        ]
    findings = []
    with image_bytes(path) as data:
        if fs == "ext2fs":
            problem = ext2_problem(data)
            if problem and any(name in problem for _, _, name in LINUX_MOUNT_MARKS):
                problem += (
                    "; Linux writes these on every mount: mount it only through domus, "
                    "which takes them back"
                )
            findings.append(Finding(subject, "ext2fs superblock (fsck_ext2fs readsb)", problem))
        else:
            problems = ffs_problems(data)
            findings.append(
                Finding(subject, "ffs superblock and cylinder groups", "; ".join(problems) or None)
            )
    if on_netbsd() and os.geteuid() == 0 and blockdev is not None and locks is not None:
        problem = netbsd_fsck_problem(path, fs, blockdev, locks)
        findings.append(Finding(subject, f"{FSCK[fs]} -n", problem))
    elif fs == "ext2fs":
        findings.append(Finding(subject, "e2fsck -fn", e2fsck_problem(path)))
    problems = read_back_problems(path, fs)
    reader = "domus's FFS reader" if fs == "ffs" else "sleuthkit"
    findings.append(
        Finding(subject, f"every file read back ({reader})", "; ".join(problems[:5]) or None)
    )
    return findings


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
    # beside the image, the plain copy never leaves its file system; it goes with its
    # private directory however the block ends, and a killed check's with the next command
    with sigterm_raises(), private_dir(image) as private:
        plain = private / "plain.img"
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


def running_images(site: Site, layout: Layout) -> tuple[set[Path], list[Finding]]:
    """The local.img of every domU that runs (by its name, or an image a running domain
    has among its disks), and a warning when xl cannot tell what runs."""
    try:
        domains = running_domains()
    except DomusError as error:
        return set(), [
            Finding("dom0", "running domUs (xl)", f"{error}; every image checked", warning=True)
        ]
    names = {domain.name for domain in domains}
    # a disk through a hotplug script names IMAGE,PARAMS
    disks = {_real(part) for d in domains for disk in d.disks for part in disk.split(",")}
    running = set()
    for domu in site.domus:
        image = layout.local_image(domu.name)
        if domu.name in names or _real(str(image)) in disks:
            running.add(image)
    return running, []


def _depends(site: Site, domu: DomU) -> tuple[list[Path], list[object]]:
    """The files besides local.img its findings depend on, and what the site expects of it."""
    if not domu.local_encrypted:
        return [], [domu.local.fs]
    files = [params_path(site.keys, domu.name)]
    if not domu.local_opened_by_dom0:
        files.append(passphrase_path(site.keys, domu.name))
    return files, [domu.local.fs, domu.local.cipher, domu.local.keylength]


def _real(path: str) -> str:
    return os.path.realpath(path.strip())


def _local(site: Site, domu: DomU, layout: Layout) -> list[Finding]:
    if domu.local_encrypted:
        return _encrypted_local(site, domu, layout)
    image = layout.local_image(domu.name)
    subject = f"{domu.name}/local.img"
    findings = _checked(image, domu.local.fs, subject, site, layout)
    if all(finding.ok for finding in findings):
        findings += room_finding(image, domu.local.fs, subject)
    return findings


def check_images(site: Site, layout: Layout, *, every: bool = False) -> Iterator[Finding]:
    """Each image's findings kept from its last check while it is unchanged
    (tasks/checks/verdicts.py), all of them read again when `every`; a running domU's
    local.img is not read (its file system changes under the reader): skipped, saying so."""
    verdicts = Verdicts(layout.output, every=every)
    running, findings = running_images(site, layout)
    yield from findings
    checked = {layout.root_image}
    try:
        yield from verdicts.findings(
            "root.img",
            [layout.root_image],
            [site.root.fs],
            lambda: _checked(layout.root_image, site.root.fs, "root.img", site, layout),
        )
        for domu in site.domus:
            image = layout.local_image(domu.name)
            subject = f"{domu.name}/local.img"
            if image in running:
                yield Finding(subject, "read", SKIPPED, skipped=True)
            else:
                also, expected = _depends(site, domu)
                yield from verdicts.findings(
                    subject, [image, *also], expected, lambda d=domu: _local(site, d, layout)
                )
            pkg = layout.pkg_image(domu.name)
            swap = layout.swap_image(domu.name)
            checked |= {image, pkg, swap}
            yield from verdicts.findings(
                f"{domu.name}/pkg.img",
                [pkg],
                [domu.pkg.fs],
                lambda d=domu, p=pkg: _checked(p, d.pkg.fs, f"{d.name}/pkg.img", site, layout),
            )
            size = swap.stat().st_size if swap.exists() else None
            problem = None
            if size is None:
                problem = "missing; `./domus build` makes it"
            elif size != domu.swap.size:
                problem = f"{size} bytes, swap.size is {domu.swap.size}; `./domus build` remakes it"
            yield Finding(f"{domu.name}/swap.img", "published, of its size", problem)
        yield from _published(site, layout, checked)
    finally:
        verdicts.save()


def _published(site: Site, layout: Layout, checked: set[Path]) -> Iterator[Finding]:
    """Every other disk an xl config gives a domU (tasks.kinds.xen): published."""
    for domu in site.domus:
        for disk in disks(site, domu, layout):
            image = Path(disk["target"])
            if image in checked:
                continue
            checked.add(image)
            subject = (
                image.relative_to(layout.images) if image.is_relative_to(layout.images) else image
            )
            problem = None if image.exists() else "missing; `./domus build` makes it"
            yield Finding(str(subject), "published", problem)
