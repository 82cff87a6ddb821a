"""The rows `./domus status` adds for domUs the site no longer has (tasks.orphans)."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from tasks.orphans import find
from tasks.site import Layout

ACTION = "retire (gc)"


def orphan_rows(output: Path, domus: Collection[str]) -> list[dict[str, object]]:
    """One row per domU with outputs left below `output` that is not one of `domus`."""
    layout = Layout(output, output / "locks")
    return [
        {
            "domain": orphan.name,
            "image": ", ".join(orphan.outputs()),
            "path": str(orphan.directory or orphan.config or layout.images / "generations"),
            "action": ACTION,
            "why": [
                "no longer in the site: `./domus gc` keeps its local.img and xl config as "
                f"images/{orphan.name}.retired-STAMP and lets go of the rest"
            ],
            "task": None,
        }
        for orphan in find(layout, domus)
    ]
