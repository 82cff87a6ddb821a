"""Converging an existing local.img in place: the tool's files change, the domU's do not.

The managed files (the `local/` templates and the managed variables of /etc/rc.conf) are
read from the image, compared with what the site makes them, and only those that differ
are rewritten, each one first kept beside itself as NAME.domus-YYYYmmddTHHMMSS (the newest
converge.keep_backups of them); a file domus wrote that the site no longer manages is
removed the same way, unless the domU changed it (tasks/converge/retire.py). The changes
are made on a copy of the image that replaces it once converged and checked, so a full
disk or a kill leaves the image as it was or converged whole. The image is the domU's own
disk, so no host kernel parses it by default: an ext2fs one is converged through debugfs,
an FFS one rewritten through makefs, an encrypted one decrypted and sealed again by domus
(`how`). With converge.mount, as root, the copy is mounted through a block device instead
(vnd on NetBSD, loop on Linux), once fsck -n passed on the image.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from tasks.blockdev.attach import mounted, watchers
from tasks.blockdev.backends import configured_backend
from tasks.blockdev.holders import check_not_in_use
from tasks.blockdev.signals import sigterm_raises
from tasks.cgd.keyfiles import params_path
from tasks.cgd.keys import local_params
from tasks.checks.filesystem import FSCK, e2fsck_problem, netbsd_fsck_problem
from tasks.converge import rewrite, sealed
from tasks.converge.debugfs import DebugfsFiles, check_clean, keep_owner
from tasks.converge.flags import require_changeable
from tasks.converge.mounted import MountedFiles
from tasks.converge.plan import Change, FileState, decode, directory_changes, plan, room_needed
from tasks.converge.retire import Retirement, record_file, recorded, retirement
from tasks.converge.shape import Shape, check_size, describe, grow_ext2fs, new_shape
from tasks.formats.superblocks import detect_fs
from tasks.images.publish import publishing
from tasks.images.working_copy import working_copy
from tasks.pkgsrc.setup import PackageSetup, setup_of
from tasks.recipes.local import RC_CONF, managed_files
from tasks.recipes.managed_record import RECORD
from tasks.recipes.pkgsetup import package_dirs, package_paths, with_package_setup
from tasks.render import Templates
from tasks.run.errors import DomusError
from tasks.run.log import note
from tasks.site import DomU, Layout, Site
from tasks.site.sizes import format_size
from tasks.tools import find, run


class ImageFiles(Protocol):
    def read_all(self, paths: Sequence[str]) -> dict[str, FileState | None]: ...

    # the paths the image has nothing at, below directories only (a link on the way is the
    # domU's, and what lies past it too)
    def missing_dirs(self, paths: Sequence[str]) -> set[str]: ...

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


# How each method reads and writes the image, as status and the dry run tell it
METHODS = {
    "mount": "by mounting it through the host kernel (converge.mount: true), once fsck -n passed",
    "debugfs": "through debugfs, without mounting it",
    "rewrite": "by rewriting it whole through makefs, without mounting it",
    "sealed": "on a plaintext copy domus decrypts and seals again, without mounting it",
}
# seconds fsck -n may take before a mount: a guest's disk can be crafted to loop a checker
FSCK_SECONDS = 600


def how(fs: str, backend_setting: str, encrypted: bool = False, mount: bool = False) -> str:
    """'mount', 'debugfs', 'rewrite' or 'sealed': the way the image is converged here.

    A local.img is the domU's own disk, crafted as the domU likes, so it is converged in
    user space (debugfs for ext2fs, a rewrite through makefs for FFS, domus's own decrypt
    and seal for an encrypted one) unless the operator opted into mounting it
    (converge.mount), which needs root and a backend here that mounts the file system and,
    encrypted, has cgd(4)."""
    backend = configured_backend(backend_setting)
    mountable = mount and backend is not None and is_root() and backend.can_mount(fs)
    if encrypted:
        cgd = backend is not None and backend.planned_cgd(0) is not None
        return "mount" if mountable and cgd else "sealed"
    if mountable:
        return "mount"
    if fs == "ext2fs":
        return "debugfs"
    if fs == "ffs":
        return "rewrite"
    raise DomusError(f"domus converges ffs and ext2fs images, not {fs}")


def require_fsck_clean(site: Site, domu: DomU, layout: Layout, image: Path) -> None:
    """The host kernel parses an image it mounts: it is mounted only once fsck -n (NetBSD's
    own through a read-only vnd unit where vnd mounts it, e2fsck -fn on loop) found
    nothing."""
    fs = domu.local.fs
    backend = configured_backend(site.blockdev.backend)
    if backend is not None and backend.name == "vnd":
        tool = f"{FSCK[fs]} -n"
        problem = netbsd_fsck_problem(
            image, fs, site.blockdev, layout.locks, cgd_params(site, domu), FSCK_SECONDS
        )
    else:
        tool = "e2fsck -fn"
        problem = e2fsck_problem(image, FSCK_SECONDS)
    if problem is not None:
        repair = (
            f"`e2fsck -fy {image}`"
            if fs == "ext2fs"
            else f"`vnconfig vnd0 {image}; fsck_ffs -y /dev/rvnd0a; vnconfig -u vnd0`"
        )
        raise DomusError(
            f"{image} is not mounted to converge it: `{tool}` found problems the host "
            f"kernel would parse ({problem}); nothing was changed",
            hint=f"with {domu.name} down, repair it with its own fsck (in the domU, or "
            f"{repair} here), or converge it without converge.mount, in user space",
        )


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
        or f"`./domus reprovision {domu.name}` (the old image is kept as a dated backup), "
        "or undo the change",
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
    image = layout.local_image(domu.name)
    check_not_in_use(image, domu.name, watchers(configured_backend(site.blockdev.backend)))
    keep_images = site.converge.keep_images
    with ExitStack() as stack:
        files: ImageFiles
        if method == "mount":
            files = stack.enter_context(_mounted_files(site, domu, layout, image, readonly, extra))
        elif method == "sealed":
            params, passphrase = local_params(site.keys, domu)
            files = stack.enter_context(
                sealed.opened(image, params, passphrase, domu.local.fs, keep_images)
            )
        elif method == "rewrite":
            files = stack.enter_context(rewrite.opened(image, keep_images, shape))
        else:
            files = DebugfsFiles(image)
        files.max_file_size = site.converge.max_file_size
        yield files


@contextmanager
def _mounted_files(
    site: Site, domu: DomU, layout: Layout, image: Path, readonly: bool, extra: int
) -> Iterator[MountedFiles]:
    # Only a mount writes FFS in place (no user-space tool does) and opens a cgd image on
    # NetBSD: so the copy is mounted, and the image itself only ever read-only.
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
        elif find("fsck_ffs"):  # NetBSD's, where FFS is written
            # the copy holds the guest's bytes: fsck runs within the guest tools' bounds
            done = run(["fsck_ffs", "-fn", str(copy)], copy.name, check=False, guest=True)
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
    dirs = package_dirs(setup) if setup is not None else []
    missing = files.missing_dirs([d.path for d in dirs]) if dirs else set()
    changes = plan(wanted, current) + directory_changes(dirs, missing) + retired.removals
    if changes or retired.stale:
        changes += plan([record_file(wanted, current, changes, record)], current)
    changes.sort(key=lambda change: change.path)
    require_changeable(image, changes, files.directory_flags)
    return changes, retired


@dataclass(frozen=True)
class Converged:
    """What a converge changed (or, dry, would change)."""

    changes: list[Change]
    # the new size and inode density the image was given (or, dry, would be); None: its own
    shape: Shape | None = None


def converge(
    site: Site,
    domu: DomU,
    layout: Layout,
    templates: Templates,
    context: Mapping[str, object],
    *,
    dry_run: bool,
    changed: Sequence[str] = (),
) -> Converged:
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
            else how(
                domu.local.fs, site.blockdev.backend, domu.local_encrypted, site.converge.mount
            )
        )
    except DomusError as error:
        raise refusal(domu, image, changed, error.message, error.hint) from None
    if dry_run:
        note(f"{image}: would converge it {METHODS[method]}")
    if method == "mount":
        require_fsck_clean(site, domu, layout, image)
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
                    if remake is not None:
                        note(f"{image}: would make anew at {describe(remake)}")
                    elif shape is not None:
                        note(f"{image}: would grow to {describe(shape)} (resize2fs)")
                if changes and not dry_run and remake is None:
                    extra = require_image_room(image, changes, files)
            if dry_run or not (changes or remake):
                return Converged(changes, shape)
        with image_files(
            site, domu, layout, readonly=False, method=method, extra=extra, shape=remake
        ) as files:
            changes, retired = changes_for(
                image, files, templates, context, dict(domu.rc_conf), setup
            )
            retired.say(str(image))
            if not (changes or remake):
                return Converged(changes, shape)
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
    made = [f"/{change.path}" for change in changes if change.directory]
    rewrote = [
        f"/{change.path}" for change in changes if change.new is not None and not change.directory
    ]
    removed = [f"/{change.path}" for change in changes if change.new is None]
    done = [f"made the directories {', '.join(made)}"] if made else []
    done += [f"rewrote {', '.join(rewrote)}"] if rewrote else []
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
    return Converged(changes, shape)
