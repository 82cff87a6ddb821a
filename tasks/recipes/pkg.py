"""pkg.img: /usr/pkg from a directory tree, from pkgsrc binary packages, or empty."""

from __future__ import annotations

from pathlib import Path

from tasks.pkgsrc.install import install_packages
from tasks.site import PkgSource
from tasks.source_tree import load_tree
from tasks.tree import Tree


def setup_pkg(source: PkgSource, staging: Path, cache: Path) -> Tree:
    if source.tree is not None:
        return load_tree(source.tree, None, staging)
    tree = Tree.empty(staging)
    if source.packages:
        install_packages(tree, source.packages, cache)
    return tree
