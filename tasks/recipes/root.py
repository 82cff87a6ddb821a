"""root.img: the seed's `setup_root`, one function per step.

The shared root is read-only in every domU. init(8) finds no /dev/console and makes a
memory /dev with `MAKEDEV init`; /etc/rc sources /etc/rc.pre-hooks, which mounts the
domU's own disk on /local, puts its /etc over the shared one and re-executes /etc/rc.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath

from tasks.edits.makedev import patch_init_target
from tasks.edits.rc import add_pre_hook
from tasks.images.tree import Tree
from tasks.recipes.templated import write_templates
from tasks.render import Templates
from tasks.run.errors import DomusError

MOUNT_POINTS = ("emul", "local", "usr/pkg", "kern", "proc")


def install_kernel(tree: Tree, kernel: Path) -> None:
    """The kernel under its own name, with /netbsd a hard link to it (what boot and ps use)."""
    tree.add_file(kernel.name, kernel, mode=0o444)
    if kernel.name != "netbsd":
        tree.hardlink("netbsd", kernel.name)


def prepare_mfs_dev(tree: Tree) -> None:
    """Leave /dev with MAKEDEV alone: with no /dev/console, init(8) makes a memory /dev."""
    if "dev/MAKEDEV" not in tree:
        raise DomusError(
            "the root tree has no /dev/MAKEDEV",
            hint="use a tree or sets with NetBSD's /dev/MAKEDEV (base and etc sets)",
        )
    for path in [p for p, _ in tree.walk("dev") if p.count("/") == 1 and p != "dev/MAKEDEV"]:
        tree.remove(path)


def patch_makedev(tree: Tree, add: Sequence[str], remove: Sequence[str]) -> None:
    """MAKEDEV's `init` target makes the devices a domU needs and none it never has."""
    tree.replace_text(
        "dev/MAKEDEV", _edit(tree, "dev/MAKEDEV", lambda text: patch_init_target(text, add, remove))
    )


def make_mount_points(tree: Tree) -> None:
    for path in MOUNT_POINTS:
        parts = path.split("/")
        for depth in range(1, len(parts) + 1):
            sub = "/".join(parts[:depth])
            if sub not in tree:
                tree.mkdir(sub, 0o755)


def install_rc_hook(tree: Tree, templates: Templates, context: Mapping[str, object]) -> None:
    """Write the root templates (rc.pre-hooks); /etc/rc sources the hook, rc.orig is kept."""
    write_templates(tree, templates, "root", context)
    if "etc/rc.orig" not in tree:
        tree.hardlink("etc/rc.orig", "etc/rc")
    tree.replace_text("etc/rc", _edit(tree, "etc/rc", add_pre_hook))


def _edit(tree: Tree, path: str, edit) -> str:
    try:
        return edit(tree.read_text(path))
    except DomusError as error:
        raise DomusError(f"/{path} in the root tree: {error.message}", error.hint) from error


def install_local_cgd_params(tree: Tree, params: Mapping[str, Path]) -> None:
    """The cgd params of the domUs that open an encrypted /local themselves, each at its
    path in the tree (in the order given), in directories only root may read.

    They hold a salt and an iteration count, no key: the key comes from the passphrase
    typed on the domU's console, and rc.pre-hooks tries it with each file of their directory.
    """
    for path, source in params.items():
        parents = PurePosixPath(path).parents
        for directory in reversed([str(parent) for parent in parents if str(parent) != "."]):
            if directory not in tree:
                tree.mkdir(directory, 0o700)
        tree.write_bytes(path, source.read_bytes(), mode=0o600)


def setup_root(
    tree: Tree,
    kernel: Path,
    makedev_add: Sequence[str],
    makedev_remove: Sequence[str],
    templates: Templates,
    context: Mapping[str, object],
    local_cgd_params: Mapping[str, Path],
) -> Tree:
    install_kernel(tree, kernel)
    prepare_mfs_dev(tree)
    patch_makedev(tree, makedev_add, makedev_remove)
    make_mount_points(tree)
    install_local_cgd_params(tree, local_cgd_params)
    install_rc_hook(tree, templates, context)
    return tree
