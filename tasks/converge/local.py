"""Converging an existing local.img in place: the tool's files change, the domU's do not.

The managed files (the `local/` templates and the managed variables of /etc/rc.conf) are
read from the image, compared with what the site makes them, and only those that differ
are rewritten, each one first kept beside itself as NAME.domus-YYYYmmddTHHMMSS (the newest
converge.keep_backups of them); a file domus wrote that the site no longer manages is
removed the same way, unless the domU changed it (tasks/converge/retire.py). The changes
are made on a copy of the image that replaces it once converged and checked, so a full
disk or a kill leaves the image as it was or converged whole. As root the copy is mounted
through a block device (vnd on NetBSD, loop on Linux), whatever its file system; an ext2fs
image can also be converged by any user through debugfs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Protocol

from tasks.blockdev.attach import mounted, watchers
from tasks.blockdev.backend import configured_backend
from tasks.blockdev.holders import check_not_in_use
from tasks.blockdev.signals import sigterm_raises
from tasks.converge import rewrite, sealed
from tasks.converge.debugfs import DebugfsFiles, check_clean, keep_owner
from tasks.converge.flags import require_changeable
from tasks.converge.mounted import MountedFiles
from tasks.converge.plan import Change, FileState, decode, plan, room_needed
from tasks.converge.retire import Retirement, record_file, recorded, retirement
from tasks.converge.shape import Shape, check_size, describe, grow_ext2fs, new_shape
from tasks.errors import DomusError
from tasks.images.publish import publishing
from tasks.images.working_copy import working_copy
from tasks.keyfiles import params_path
from tasks.keys import local_params
from tasks.log import note
from tasks.pkgsrc.setup import PackageSetup, setup_of
from tasks.recipes.local import RC_CONF, managed_files
from tasks.recipes.managed_record import RECORD
from tasks.recipes.pkgsetup import package_paths, with_package_setup
from tasks.render import Templates
from tasks.site import DomU, Layout, Site
from tasks.sizes import format_size
from tasks.superblocks import detect_fs


class ImageFiles(Protocol):
    def read_all(self, paths: Sequence[str]) -> dict[str, FileState | None]: ...

    max_file_size: int  # bytes: read_all refuses a larger file before reading it
    pruned: list[str]  # the backups apply removed, beyond converge.keep_backups
    # the chflags of the managed files' existing ancestor directories ("" the top), by read_all
    directory_flags: dict[str, int]

    def room(self) -> tuple[int, int]: ...

    def apply(self, changes: Sequence[Change], stamp: str, keep: int) -> list[str]: ...


def is_root() -> bool:
    return os.geteuid() == 0


def cgd_params(site: Site, domu: DomU) -> Path | None:
    """The cgdconfig params an encrypted local.img is opened with on the dom0."""
    if not domu.local_encrypted:
        return None
    if domu.local_opened_by_dom0:
        return params_path(site.keys, domu.name)
    raise DomusError(
        "it is encrypted with a passphrase typed at the domU's console "
        "(local.encrypt: domu), which the dom0 does not use"
    )


def how(fs: str, backend_setting: str, encrypted: bool = False) -> str:
    """'mount', 'debugfs', 'rewrite' or 'sealed'; a DomusError saying why when none works.

    An FFS image no mount here can write (Linux; NetBSD without root) is rewritten whole
    through makefs (tasks/converge/rewrite.py); an encrypted one without cgd(4) is
    decrypted, converged (debugfs or rewrite) and sealed again by domus itself."""
    backend = configured_backend(backend_setting)
    if encrypted and (backend is None or backend.planned_cgd(0) is None or not is_root()):
        return "sealed"
    if backend is not None and is_root() and backend.can_mount(fs):
        return "mount"
    if fs == "ext2fs" and not encrypted:
        return "debugfs"
    if fs == "ffs":
        return "rewrite"
    if backend_setting == "none":
        why = "blockdev.backend is none, and only ext2fs images converge without mounting"
    elif not is_root():
        why = f"a {fs} image is converged by mounting it, which needs root"
    elif backend is None:
        why = "this system has no block-device backend to mount it with"
    else:
        why = f"{backend.name} devices on this system cannot mount {fs}"
    raise DomusError(why)


def refusal(
    domu: DomU, image: Path, changed: Sequence[str], why: str, hint: str | None = None
) -> DomusError:
    if changed:
        what = (
            f"{image} is the state of {domu.name} and is never rebuilt over; its inputs "
            f"changed ({', '.join(changed)}) but it cannot be converged in place here"
        )
    else:
        what = f"{image}, the state of {domu.name}, cannot be converged in place here"
    return DomusError(
        f"{what}: {why}",
        hint=hint
        or f"run `./domus build` as root on the NetBSD dom0 (vnd mounts FFS); or "
        f"`./domus reprovision {domu.name}` (the old image is kept as a dated backup); "
        "local.fs: ext2fs images converge on any system, even without root; or undo the change",
    )


@contextmanager
def image_files(
    site: Site,
    domu: DomU,
    layout: Layout,
    *,
    readonly: bool,
    method: str,
    extra: int = 0,
    shape: Shape | None = None,
) -> Iterator[ImageFiles]:
    """The image's files to read (readonly) or to converge: a converge never writes into
    the image itself, but into a copy that replaces it once converged and checked.
    `extra`: the bytes the converge writes into the image, for the copy's room; `shape`:
    the new size and inode density a rewrite makes the image with. A file larger than
    converge.max_file_size is refused before it is read."""
    with _image_files(
        site, domu, layout, readonly=readonly, method=method, extra=extra, shape=shape
    ) as files:
        files.max_file_size = site.converge.max_file_size
        yield files


@contextmanager
def _image_files(
    site: Site,
    domu: DomU,
    layout: Layout,
    *,
    readonly: bool,
    method: str,
    extra: int = 0,
    shape: Shape | None = None,
) -> Iterator[ImageFiles]:
    image = layout.local_image(domu.name)
    check_not_in_use(image, domu.name, watchers(configured_backend(site.blockdev.backend)))
    if method == "mount":
        with _mounted_files(site, domu, layout, image, readonly, extra) as files:
            yield files
        return
    keep_images = site.converge.keep_images
    if method == "sealed":
        params, passphrase = local_params(site.keys, domu)
        with sealed.opened(image, params, passphrase, domu.local.fs, keep_images) as files:
            yield files
        return
    if method == "rewrite":
        with rewrite.opened(image, keep_images, shape) as files:
            yield files
        return
    yield DebugfsFiles(image)


@contextmanager
def _mounted_files(
    site: Site, domu: DomU, layout: Layout, image: Path, readonly: bool, extra: int
) -> Iterator[MountedFiles]:
    # Only a mount writes FFS (no user-space tool does) and opens a cgd image on NetBSD:
    # so the copy is mounted, and the image itself only ever read-only.
    def mount(path: Path) -> AbstractContextManager[Path]:
        return mounted(
            path,
            domu.local.fs,
            blockdev=site.blockdev,
            locks=layout.locks,
            what=f"converging {domu.name}",
            readonly=readonly,
            domain=domu.name,
            cgd_params=cgd_params(site, domu),
        )

    if readonly:
        with mount(image) as top:
            yield MountedFiles(top, image)
        return
    with publishing(image) as copy:
        working_copy(image, copy, extra, f"converging {image} on a copy")
        keep_owner(image, copy)
        with mount(copy) as top:
            yield MountedFiles(top, image)
        if cgd_params(site, domu) is None:
            check_converged(copy, domu.local.fs)


def check_converged(copy: Path, fs: str) -> None:
    """The converged copy replaces the image only as a file system checker finds no error."""
    try:
        if fs == "ext2fs":
            check_clean(copy)
        elif shutil.which("fsck_ffs"):  # NetBSD's, where FFS is written
            done = subprocess.run(["fsck_ffs", "-fn", str(copy)], capture_output=True, text=True)
            if done.returncode != 0:
                raise DomusError(f"`fsck_ffs -fn` exit {done.returncode}: {done.stdout[-300:]}")
    except DomusError as error:
        raise DomusError(
            f"the converged copy failed its check, the image is unchanged: {error.message}"
        ) from None


def require_image_room(image: Path, changes: Sequence[Change], files: ImageFiles) -> int:
    """The bytes the changes write into the image; a DomusError if it has not the room."""
    free, block = files.room()
    need = room_needed(changes, block)
    if need > free:
        raise DomusError(
            f"converging {image} writes {format_size(need)} into it "
            f"({', '.join('/' + change.path for change in changes)}), and its file system "
            f"has {format_size(free)} free; nothing was changed",
            hint="free space inside the image (its domU's /var, /tmp, or old "
            "NAME.domus-YYYYmmddTHHMMSS backups), or `./domus reprovision` it larger",
        )
    return need


def check_shape(domu: DomU, image: Path) -> None:
    """The image is what its settings say (file system, encryption) and no larger than
    local.size: a converge grows an image, it does not shrink, reformat or encrypt one."""
    check_size(domu, image.stat().st_size)
    found = detect_fs(image)
    if domu.local_encrypted:
        if found is not None:
            raise DomusError(
                f"it is a plain {found} image but local.encrypt is "
                f"{domu.local.encrypt}: a converge does not encrypt an image"
            )
    elif found is None:
        raise DomusError(
            "it holds no ffs or ext2fs file system that domus can see (is it "
            "encrypted? local.encrypt is none)"
        )
    elif found != domu.local.fs:
        raise DomusError(
            f"it holds {found} but local.fs is {domu.local.fs}: a converge does "
            "not reformat an image"
        )


def changes_for(
    image: Path,
    files: ImageFiles,
    templates: Templates,
    context: Mapping[str, object],
    rc_vars: Mapping[str, str],
    setup: PackageSetup | None = None,
) -> tuple[list[Change], Retirement]:
    """The changes, in path order, and what becomes of the files the site no longer
    manages; a DomusError if NetBSD would refuse one of the changes. The image's record of
    what domus wrote is rewritten with any other change."""
    paths = [*templates.names("local"), RC_CONF, RECORD]
    if setup is not None:
        paths += package_paths(setup)
    current = files.read_all(sorted(set(paths)))
    rc_conf = current.get(RC_CONF)
    wanted = managed_files(
        templates, context, rc_vars, decode(rc_conf.data) if rc_conf is not None else None
    )
    if setup is not None:
        texts = {path: decode(state.data) for path, state in current.items() if state is not None}
        wanted = with_package_setup(wanted, setup, texts)
    record = recorded(current.get(RECORD), str(image))
    retired = retirement(files, record, wanted)
    changes = plan(wanted, current) + retired.removals
    if changes or retired.stale:
        changes += plan([record_file(wanted, current, changes, record)], current)
    changes.sort(key=lambda change: change.path)
    require_changeable(image, changes, files.directory_flags)
    return changes, retired


def converge(
    site: Site,
    domu: DomU,
    layout: Layout,
    templates: Templates,
    context: Mapping[str, object],
    *,
    dry_run: bool,
    changed: Sequence[str] = (),
) -> list[Change]:
    """Make the image's managed files what the site says (or, dry, say what would change).

    `changed` names the inputs that changed since the image was built or converged, for
    messages. The caller holds the image's lock.
    """
    image = layout.local_image(domu.name)
    try:
        check_shape(domu, image)
        cgd_params(site, domu)
        shape = new_shape(domu, image)
        # a new size or inode table: FFS is made anew by the rewrite, whatever mounts here
        remake = shape if shape is not None and domu.local.fs == "ffs" else None
        method = (
            "rewrite"
            if remake is not None
            else how(domu.local.fs, site.blockdev.backend, domu.local_encrypted)
        )
    except DomusError as error:
        raise refusal(domu, image, changed, error.message, error.hint) from None
    setup = setup_of(domu.pkg.source)
    start = time.monotonic()
    keep = site.converge.keep_backups
    # SIGTERM unwinds like Ctrl-C: unmount and detach, remove the unfinished copy
    with sigterm_raises():
        if shape is not None and remake is None and not dry_run:
            check_not_in_use(image, domu.name, watchers(configured_backend(site.blockdev.backend)))
            grow_ext2fs(image, shape.size)
            note(f"grew {image} to {describe(shape)} (resize2fs)")
        extra = 0
        if dry_run or method != "sealed":  # a sealed image is read once, from its plaintext
            with image_files(site, domu, layout, readonly=True, method=method) as files:
                changes, retired = changes_for(
                    image, files, templates, context, dict(domu.rc_conf), setup
                )
                if dry_run:
                    retired.say(str(image))
                if changes and not dry_run and remake is None:
                    extra = require_image_room(image, changes, files)
            if dry_run or not (changes or remake):
                return changes
        with image_files(
            site, domu, layout, readonly=False, method=method, extra=extra, shape=remake
        ) as files:
            changes, retired = changes_for(
                image, files, templates, context, dict(domu.rc_conf), setup
            )
            retired.say(str(image))
            if not (changes or remake):
                return changes
            if remake is None:  # a new image is as large as makefs can make it
                require_image_room(image, changes, files)
            stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
            try:
                backups = files.apply(changes, stamp, keep)
            except OSError as error:  # a full file system, in the copy or on the host
                raise DomusError(
                    f"converging {image} failed ({error.strerror}); the image is unchanged"
                ) from None
            pruned = files.pruned
            kept = getattr(files, "kept_note", "")  # the old image a rewrite kept
    rewrote = [f"/{change.path}" for change in changes if change.new is not None]
    removed = [f"/{change.path}" for change in changes if change.new is None]
    done = [f"rewrote {', '.join(rewrote)}"] if rewrote else []
    done += [f"removed {', '.join(removed)} (no longer managed)"] if removed else []
    note(
        f"converged {image} ({method}) in {time.monotonic() - start:.2f} s: "
        + (f"made anew at {describe(remake)}; " if remake else "")
        + ("; ".join(done) or "rewrote no managed file")
        + (f"; kept the old ones as {', '.join('/' + b for b in backups)}" if backups else "")
        + (
            f"; removed backups beyond converge.keep_backups ({keep}): "
            + ", ".join("/" + p for p in pruned)
            if pruned
            else ""
        )
        + (f"; {kept}" if kept else "")
    )
    return changes
