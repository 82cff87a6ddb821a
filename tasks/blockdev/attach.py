"""An image mounted through a block device for the length of a `with` block.

In order: clean up after killed runs; refuse an image someone else holds; take a unit of
the pool; record, attach, mount; and afterwards unmount, detach and forget the record,
whether the block succeeded, failed, or was stopped by Ctrl-C or SIGTERM. The caller
holds the image's own lock.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from tasks.blockdev import records
from tasks.blockdev.backend import Attachment, Backend
from tasks.blockdev.backends import backend_named, configured_backend, platform_backend_name
from tasks.blockdev.holders import check_not_in_use
from tasks.blockdev.recovery import clean_up, recover
from tasks.blockdev.signals import signals_deferred, sigterm_raises
from tasks.blockdev.units import unit_from_pool
from tasks.images.ext2_marks import require_netbsd_superblock, take_back_linux_mount_marks
from tasks.images.private import private_directory
from tasks.run.errors import DomusError
from tasks.run.log import note
from tasks.site import BlockdevSpec


def backend_for(blockdev: BlockdevSpec, fs: str) -> Backend:
    backend = configured_backend(blockdev.backend)
    if backend is None:
        raise DomusError(
            f"no block-device backend: blockdev.backend is {blockdev.backend}"
            + ("" if blockdev.backend == "none" else " and this system has none")
        )
    if not backend.can_mount(fs):
        raise DomusError(f"{backend.name} devices here cannot mount {fs}")
    return backend


def configured_or_refused(blockdev: BlockdevSpec) -> Backend:
    backend = configured_backend(blockdev.backend)
    if backend is None:
        raise DomusError(f"no block-device backend: blockdev.backend is {blockdev.backend}")
    return backend


def watchers(backend: Backend | None) -> list[Backend]:
    """The backends whose attachments count: the configured one and this system's own."""
    native = platform_backend_name()
    found = [backend] if backend is not None else []
    if native and all(other.name != native for other in found):
        found.append(backend_named(native))
    return found


@contextmanager
def attached(
    image: Path,
    *,
    blockdev: BlockdevSpec,
    locks: Path,
    what: str,
    readonly: bool,
    fs: str | None = None,
    domain: str | None = None,
    cgd_params: Path | None = None,
) -> Iterator[tuple[Backend, Attachment, Path]]:
    """Yield the backend, the attachment of `image` and the mount point its record names
    (not mounted); `what` names the job in records and messages."""
    backend = backend_for(blockdev, fs) if fs else configured_or_refused(blockdev)
    with sigterm_raises():
        for problem in recover(locks):
            note(problem)
        check_not_in_use(image, domain, watchers(backend))
        with unit_from_pool(locks, backend, blockdev.units, blockdev.wait) as unit:
            name = backend.unit_name(unit)
            record = records.Record(
                backend=backend.name,
                unit=unit,
                unit_name=name,
                pid=os.getpid(),
                image=str(image.resolve()),
                what=what,
                mountpoint=str(records.mount_dir(locks, name)),
                started=datetime.now().isoformat(timespec="seconds"),
            )
            records.save(locks, record)
            try:
                record = replace(
                    record,
                    device=backend.planned_device(unit),
                    cgd=backend.planned_cgd(unit) if cgd_params else None,
                )
                records.save(locks, record)

                def moved(device: str) -> None:
                    nonlocal record
                    record = record.with_device(device)
                    records.save(locks, record)

                attachment = backend.attach(
                    image, unit, record.device or "", readonly, cgd_params, moved
                )
                yield backend, attachment, Path(record.mountpoint)
            except BaseException:
                with signals_deferred():
                    problem = clean_up(backend, record, locks)
                if problem:
                    note(str(problem))  # the job's own error goes on up
                raise
            with signals_deferred():
                problem = clean_up(backend, record, locks)
            if problem:
                raise problem


@contextmanager
def mounted(
    image: Path,
    fs: str,
    *,
    blockdev: BlockdevSpec,
    locks: Path,
    what: str,
    readonly: bool,
    domain: str | None = None,
    cgd_params: Path | None = None,
) -> Iterator[Path]:
    """Yield the mount point of `image`; `what` names the job in records and messages.

    A plain ext2fs image mounted writable gets back, once unmounted and detached, the
    superblock fields Linux writes on every mount (see tasks/images/ext2_marks.py), and
    is then held to NetBSD's rule: a mount that leaves it unbootable is an error.
    """
    backend = backend_for(blockdev, fs)
    marks = fs == "ext2fs" and not readonly and cgd_params is None
    try:
        with attached(
            image,
            blockdev=blockdev,
            locks=locks,
            what=what,
            readonly=readonly,
            fs=fs,
            domain=domain,
            cgd_params=cgd_params,
        ) as (_, attachment, mountpoint):
            # under a directory only root enters: no other user reaches the domU's files
            # through it while it is mounted, nor puts one in its /tmp
            private_directory(mountpoint.parent)
            private_directory(mountpoint)
            backend.mount(attachment, mountpoint, fs, readonly)
            yield mountpoint
    except BaseException:
        if marks and not backend.holders(image):  # not left mounted
            with signals_deferred(), contextlib.suppress(OSError):
                take_back_linux_mount_marks(image)
        raise
    if marks:
        with signals_deferred():
            take_back_linux_mount_marks(image)
        require_netbsd_superblock(image)
