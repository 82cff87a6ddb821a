"""local.img: the seed's `setup_local`, one function per step.

A domU's own /etc, /var and /tmp start as copies of the prepared root's, with the
vanilla /etc/rc back in place, then get the files written from the `local/` templates
(fstab, rc.conf.d/root, cgd swap, ...), the record of the files written
(tasks/recipes/managed_record.py), and the edits of NetBSD's own files.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tasks.edits.crontab import disable_periodic
from tasks.edits.rc import HOOK
from tasks.edits.rcconf import set_rc_vars
from tasks.edits.ttys import domu_ttys
from tasks.images.tree import Tree
from tasks.recipes.managed_record import RECORD, RECORD_MODE, digest, record_text
from tasks.recipes.templated import ensure_dirs, render_group, write_templates
from tasks.render import Templates
from tasks.run.errors import DomusError
from tasks.site.netbsd import ENTROPY_FILE, LOCAL_MOUNT

MUTABLE_DIRS = ("etc", "tmp", "var")
ROOT_CRONTAB = "var/cron/tabs/root"
RC_CONF = "etc/rc.conf"


def copy_mutable_dirs(root: Tree, local: Tree) -> None:
    for top in MUTABLE_DIRS:
        if top not in root:
            raise DomusError(f"the root tree has no /{top} to copy into the local image")
        local.copy_from(root, top)


def restore_vanilla_rc(local: Tree) -> None:
    """The domU's /etc/rc is NetBSD's own: the hook belongs to the shared root alone."""
    local.replace_text("etc/rc", local.read_text("etc/rc.orig"))
    local.remove("etc/rc.orig")
    if HOOK.lstrip("/") in local:
        local.remove(HOOK.lstrip("/"))


def make_entropy_dir(local: Tree) -> None:
    """rndctl -S writes the seed into an existing directory: NetBSD's sets ship /var/db
    (root:wheel 0755, as mtree's NetBSD.dist makes it); a root tree without it gets it."""
    directory = posixpath.relpath(posixpath.dirname(ENTROPY_FILE), LOCAL_MOUNT)
    if directory not in local:
        ensure_dirs(local, directory)
        local.mkdir(directory, 0o755, uid=0, gid=0)


def write_local_templates(
    local: Tree, templates: Templates, context: Mapping[str, object]
) -> list[str]:
    return write_templates(local, templates, "local", context)


def write_managed_record(local: Tree, written: list[str]) -> None:
    """The record of the files domus wrote, by the bytes staged for them; rc.conf is the
    domU's own file, which domus edits, not one it writes."""
    paths = [path for path in written if path not in (RC_CONF, RECORD)]
    ensure_dirs(local, RECORD)
    entries = {path: digest(local.host_path(path).read_bytes()) for path in paths}
    local.write_text(RECORD, record_text(entries), mode=RECORD_MODE)


def edit_rc_conf(local: Tree, variables: Mapping[str, str]) -> None:
    _edit(local, RC_CONF, lambda text: set_rc_vars(text, variables))


def edit_ttys(local: Tree) -> None:
    _edit(local, "etc/ttys", domu_ttys)


def edit_root_crontab(local: Tree) -> None:
    _edit(local, ROOT_CRONTAB, disable_periodic)


def _edit(tree: Tree, path: str, edit: Callable[[str], str]) -> None:
    if path not in tree:
        raise DomusError(f"the root tree has no /{path} to edit")
    try:
        tree.replace_text(path, edit(tree.read_text(path)))
    except DomusError as error:
        raise DomusError(f"/{path}: {error.message}", error.hint) from error


@dataclass(frozen=True)
class ManagedFile:
    """A file domus owns in a local image; mode None keeps the image's own (rc.conf's).
    A file made `once` (a package's configuration) is written where it is missing and never
    again: from then on it is the domU's."""

    path: str
    text: str
    mode: int | None
    uid: int = 0
    gid: int = 0
    once: bool = False


@dataclass(frozen=True)
class ManagedDir:
    """A directory domus makes in a local image where it has none; one the image has, of any
    kind, is the domU's and left alone."""

    path: str
    mode: int
    uid: int = 0
    gid: int = 0


def managed_files(
    templates: Templates,
    context: Mapping[str, object],
    rc_vars: Mapping[str, str],
    rc_conf: str | None,
) -> list[ManagedFile]:
    """What converging an existing local image makes true: the `local/` templates rendered as
    the build renders them, and its own rc.conf (`rc_conf`, None if it has none) edited as
    the build edits it. Every other file in the image is the domU's."""
    rendered = render_group(templates, "local", context)
    files = [
        ManagedFile(item.path, item.text, item.mode) for item in rendered if item.path != RC_CONF
    ]
    # a site template of rc.conf is written first and then edited, as in setup_local
    template = next((item for item in rendered if item.path == RC_CONF), None)
    base = template.text if template is not None else rc_conf or ""
    try:
        text = set_rc_vars(base, rc_vars)
    except DomusError as error:
        raise DomusError(f"/{RC_CONF}: {error.message}", error.hint) from error
    files.append(ManagedFile(RC_CONF, text, template.mode if template is not None else None))
    return files


def setup_local(
    root: Tree,
    staging: Path,
    templates: Templates,
    context: Mapping[str, object],
    rc_vars: Mapping[str, str],
) -> Tree:
    local = Tree.empty(staging)
    copy_mutable_dirs(root, local)
    restore_vanilla_rc(local)
    make_entropy_dir(local)
    written = write_local_templates(local, templates, context)
    write_managed_record(local, written)
    edit_rc_conf(local, rc_vars)
    edit_ttys(local)
    edit_root_crontab(local)
    return local
