"""local.img: a package set's setup (tasks.pkgsrc.setup) in a domU's own files.

A build makes it whole; a converge of an existing image adds what is missing: the users and
groups (the image's own account files edited), the directories, the configuration files and
rc.d scripts.
Nothing the image has is changed: a configuration file is the domU's once it is there. A site
template of one of these files wins over the package's example.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from tasks.edits.accounts import add_groups, add_master_users, add_passwd_users
from tasks.images.tree import Tree
from tasks.pkgsrc.setup import LOCAL_SYSCONFDIR, PackageSetup, example, local_path, pkg_path
from tasks.recipes.local import ManagedDir, ManagedFile
from tasks.recipes.templated import ensure_dirs
from tasks.run.errors import DomusError

log = logging.getLogger(__name__)

ENCODING, ERRORS = "utf-8", "surrogateescape"  # as tasks.converge.plan encodes a file's text


def account_edits(setup: PackageSetup) -> dict[str, Callable[[str], str]]:
    """The edits of the account files the setup needs (none without users or groups)."""
    edits: dict[str, Callable[[str], str]] = {}
    if setup.groups:
        edits["etc/group"] = lambda text: add_groups(text, setup.groups)
    if setup.users:
        edits["etc/master.passwd"] = lambda text: add_master_users(text, setup.users)
        edits["etc/passwd"] = lambda text: add_passwd_users(text, setup.users)
    return edits


def _edited(path: str, edit: Callable[[str], str], text: str) -> str:
    try:
        return edit(text)
    except DomusError as error:
        raise DomusError(f"/{path}: {error.message}", error.hint) from error


def _placed(path: str, what: str) -> str | None:
    where = local_path(path)
    if where is None and pkg_path(path) is None:
        log.warning("%s %s is neither on local.img nor in pkg.img: not made", what, path)
    return where


def apply_package_setup(local: Tree, setup: PackageSetup) -> None:
    """The build's step, after the templates: a path the tree already has is left alone."""
    for path, edit in account_edits(setup).items():
        if path not in local:
            raise DomusError(f"the root tree has no /{path} to add the packages' accounts to")
        local.replace_text(path, _edited(path, edit, local.read_text(path)))
    for directory in setup.dirs:
        _placed(directory.path, "directory")
    for made in package_dirs(setup):
        if made.path not in local:
            ensure_dirs(local, made.path)
            local.mkdir(made.path, made.mode, made.uid, made.gid)
    for file in setup.files:
        where = _placed(file.path, "file")
        if where is not None and where not in local:
            data, mode = example(file)
            ensure_dirs(local, where)
            local.write_bytes(where, data, mode, file.uid, file.gid)


def package_dirs(setup: PackageSetup) -> list[ManagedDir]:
    """The directories the setup makes on local.img where it has none: /etc/pkg first, where
    pkg.img's /usr/pkg/etc leads (an image made before the setup has none), then each DIR
    line's."""
    dirs = {LOCAL_SYSCONFDIR: ManagedDir(LOCAL_SYSCONFDIR, 0o755)}
    for directory in setup.dirs:
        where = local_path(directory.path)
        if where is not None and where not in dirs:
            mode = 0o755 if directory.mode is None else directory.mode
            dirs[where] = ManagedDir(where, mode, directory.uid, directory.gid)
    return list(dirs.values())


def package_paths(setup: PackageSetup) -> list[str]:
    """The image's files a converge reads for the setup."""
    paths = list(account_edits(setup))
    paths += [where for file in setup.files if (where := local_path(file.path)) is not None]
    return paths


def with_package_setup(
    files: Sequence[ManagedFile], setup: PackageSetup, texts: Mapping[str, str | None]
) -> list[ManagedFile]:
    """The managed files of a converge with the setup's: the account files edited (the site's
    template of one if there is one, else the image's own, `texts`), and each package file
    made once (its text read from the package only where the image lacks it)."""
    managed = list(files)
    index = {file.path: number for number, file in enumerate(managed)}
    for path, edit in account_edits(setup).items():
        if path in index:
            old = managed[index[path]]
            managed[index[path]] = replace(old, text=_edited(path, edit, old.text))
            continue
        text = texts.get(path)
        if text is None:
            raise DomusError(f"the image has no /{path} to add the packages' accounts to")
        managed.append(ManagedFile(path, _edited(path, edit, text), None))
    for file in setup.files:
        where = local_path(file.path)
        if where is None or where in index:
            continue
        text = texts.get(where)
        if text is not None:  # the domU's own now; listed, never rewritten
            managed.append(ManagedFile(where, text, None, once=True))
            continue
        data, mode = example(file)
        text = data.decode(ENCODING, ERRORS)
        managed.append(ManagedFile(where, text, mode, file.uid, file.gid, once=True))
    return managed
