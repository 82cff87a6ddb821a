"""Writing an xl config from its template."""

from __future__ import annotations

from pathlib import Path

from tasks.images.publish import write_file
from tasks.render import Templates
from tasks.task_xen import HOTPLUG, TEMPLATE


def build_xen(config: Path, templates: Templates, context: dict[str, object]) -> None:
    write_file(config, templates.render(TEMPLATE, context))


def build_hotplug(script: Path, templates: Templates, context: dict[str, object]) -> None:
    write_file(script, templates.render(HOTPLUG, context), mode=0o755)
