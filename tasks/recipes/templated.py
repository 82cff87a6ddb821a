"""Writing every template of a group (`root/`, `local/`) into a tree at its own path."""

from __future__ import annotations

from collections.abc import Mapping

from tasks.render import Templates
from tasks.tree import Tree, parent_of

# Secrets and cgd parameters are root's alone; everything else is world-readable.
PRIVATE_DIRS = {"etc/cgd"}
PRIVATE_FILES = ("etc/cgd/",)


def file_mode(path: str) -> int:
    return 0o600 if path.startswith(PRIVATE_FILES) else 0o644


def dir_mode(path: str) -> int:
    return 0o700 if path in PRIVATE_DIRS else 0o755


def ensure_dirs(tree: Tree, path: str) -> None:
    parent = parent_of(path)
    if parent not in tree:
        ensure_dirs(tree, parent)
        tree.mkdir(parent, dir_mode(parent))


def write_templates(tree: Tree, templates: Templates, group: str,
                    context: Mapping[str, object]) -> list[str]:
    """Render each template below `group/` to the same path in the tree; returns the paths."""
    written = []
    for path in templates.names(group):
        ensure_dirs(tree, path)
        text = templates.render(f"{group}/{path}", context)
        tree.write_text(path, text, mode=file_mode(path))
        written.append(path)
    return written
