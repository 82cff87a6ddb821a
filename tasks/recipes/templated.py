"""Writing every template of a group (`root/`, `local/`) into a tree at its own path."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tasks.images.tree import Tree, parent_of
from tasks.render import Templates

# Where a converge keeps the old versions of the scripts of /etc/rc.d (tasks/converge/plan.py).
RC_D_BACKUPS = "etc/rc.d.domus-backups"
# Secrets, cgd parameters and old rc.d scripts are root's alone; everything else is
# world-readable.
PRIVATE_DIRS = {"etc/cgd", RC_D_BACKUPS}
PRIVATE_FILES = ("etc/cgd/",)
# NetBSD installs its rc.d scripts 0555 (etc/rc.d/Makefile: FILESMODE=${BINMODE}), and
# rc.subr's run_rc_script ignores one that is not executable.
RC_D_SCRIPTS = ("etc/rc.d/",)


def file_mode(path: str) -> int:
    if path.startswith(PRIVATE_FILES):
        return 0o600
    return 0o555 if path.startswith(RC_D_SCRIPTS) else 0o644


def dir_mode(path: str) -> int:
    return 0o700 if path in PRIVATE_DIRS else 0o755


def ensure_dirs(tree: Tree, path: str) -> None:
    parent = parent_of(path)
    if parent not in tree:
        ensure_dirs(tree, parent)
        tree.mkdir(parent, dir_mode(parent))


@dataclass(frozen=True)
class Rendered:
    """One template of a group, rendered: where it goes in the image, and its mode."""

    path: str
    text: str
    mode: int


def render_group(templates: Templates, group: str, context: Mapping[str, object]) -> list[Rendered]:
    """Every template below `group/`, rendered: what a build writes and a converge compares."""
    return [
        Rendered(path, templates.render(f"{group}/{path}", context), file_mode(path))
        for path in templates.names(group)
    ]


def write_templates(
    tree: Tree, templates: Templates, group: str, context: Mapping[str, object]
) -> list[str]:
    """Render each template below `group/` to the same path in the tree; returns the paths."""
    written = []
    for item in render_group(templates, group, context):
        ensure_dirs(tree, item.path)
        tree.write_text(item.path, item.text, mode=item.mode)
        written.append(item.path)
    return written
