"""pkg.img: /usr/pkg from a directory tree, from pkgsrc binary packages, or empty."""

from __future__ import annotations

from pathlib import Path

from tasks.images.tree import Tree
from tasks.pkgsrc.install import install_packages
from tasks.pkgsrc.packages import PREFIX
from tasks.pkgsrc.setup import (
    LOCAL_SYSCONFDIR,
    SYSCONFDIR,
    PackageSetup,
    account_tables,
    example,
    package_setup,
    pkg_path,
)
from tasks.recipes.templated import ensure_dirs
from tasks.site import PkgSource
from tasks.sources.directory import load_tree


def setup_pkg(source: PkgSource, staging: Path, cache: Path) -> Tree:
    if source.tree is not None:
        return load_tree(source.tree, None, staging)
    tree = Tree.empty(staging)
    if source.packages:
        setup = package_setup(source.packages)
        install_packages(tree, source.packages, cache, account_tables(setup))
        make_package_setup(tree, setup)
        link_sysconfdir(tree)
    return tree


def make_package_setup(tree: Tree, setup: PackageSetup) -> None:
    """The packages' `# DIR:` directories and copied `# FILE:`s below /usr/pkg (outside
    /usr/pkg/etc): the same for every domU of the set, so made once here, with their mode
    and owner (REQD_FILES and the like)."""
    for directory in setup.dirs:
        path = pkg_path(directory.path)
        if path is not None and path not in tree:
            ensure_dirs(tree, path)
            mode = 0o755 if directory.mode is None else directory.mode
            tree.mkdir(path, mode, directory.uid, directory.gid)
    for file in setup.files:
        path = pkg_path(file.path)
        if path is not None and path not in tree:
            data, mode = example(file)
            ensure_dirs(tree, path)
            tree.write_bytes(path, data, mode, file.uid, file.gid)


def link_sysconfdir(tree: Tree) -> None:
    """/usr/pkg/etc (PKG_SYSCONFDIR) leads to each domU's own /etc/pkg, on its local.img, so
    that the configuration a domU edits is its own while pkg.img stays shared and read-only.
    What the packages put there themselves goes to /etc/pkg too (tasks.pkgsrc.setup)."""
    top = SYSCONFDIR.removeprefix(PREFIX + "/")
    if top in tree:
        tree.remove(top)
    tree.symlink(top, f"/{LOCAL_SYSCONFDIR}")
