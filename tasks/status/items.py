"""Every image and xl config of a site as its doit task declares it: the same task dicts
doit runs (tasks.kinds), so status judges exactly the inputs a build checks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from doit.tools import config_changed

from tasks.kinds import Kind, every
from tasks.render import BUILTIN
from tasks.site import Place
from tasks.sources.fingerprint import TreeUnchanged
from tasks.sources.inputs import flatten

if TYPE_CHECKING:
    from tasks.run.build import Build

# What status calls a kind's output where it is not the kind's name.
IMAGES = {"fetch": "download", "xen": "xl"}


def per_domu(kind: Kind) -> bool:
    """A kind that puts a file of each domU somewhere names its tasks after the domUs."""
    return any(isinstance(value, Place) and value.per_domu for value in vars(kind).values())


@dataclass
class Item:
    task: str  # doit's name: root, local:www1, ...
    domain: str | None
    image: str
    path: Path  # the first target: the image, the xl config
    targets: list[Path]
    config: dict[str, str] = field(default_factory=dict)  # dotted key: JSON value
    files: dict[str, Path] = field(default_factory=dict)  # label: file depended on
    trees: dict[str, Path] = field(default_factory=dict)  # label: source tree


def task_dicts(build: Build) -> Iterator[tuple[Kind, dict]]:
    for kind in every():
        made = kind.tasks(build)
        for task in [made] if isinstance(made, dict) else made:
            name = f"{kind.NAME}:{task['name']}" if "name" in task else kind.NAME
            yield kind, {**task, "name": name}


def items(build: Build) -> list[Item]:
    labels = Labels(build)
    found = []
    for kind, task in task_dicts(build):
        targets = [Path(t) for t in task.get("targets", [])]
        item = Item(
            task=task["name"],
            domain=task["name"].partition(":")[2] if per_domu(kind) else None,
            image=IMAGES.get(kind.NAME, kind.NAME),
            path=targets[0],
            targets=targets,
        )
        for check in task.get("uptodate", []):
            if isinstance(check, config_changed):
                item.config.update(flatten(check.config))
            elif isinstance(check, TreeUnchanged):
                item.trees["source tree"] = check.top
        item.files = dict(labels.of(path) for path in task.get("file_dep", []))
        found.append(item)
    return found


class Labels:
    """What an operator calls a file a task depends on."""

    def __init__(self, build: Build) -> None:
        site, layout = build.site, build.layout
        self.templates = [d for d in (site.templates, BUILTIN) if d is not None]
        source = site.root.source
        self.named = {
            site.root.kernel: "kernel",
            layout.kernel(site.root.kernel.name): "kernel",
            **{path: f"set {path.name}" for path in source.sets},
        }
        if source.metalog is not None:
            self.named[source.metalog] = "metalog"
        if source.image is not None:
            self.named[source.image] = "source image"

        self.known: dict[str, tuple[str, Path]] = {}

    def of(self, name: str) -> tuple[str, Path]:
        """The label of the file `name`, and its path (a thousand domUs share a few)."""
        if name not in self.known:
            path = Path(name)
            self.known[name] = self.label(path), path
        return self.known[name]

    def label(self, path: Path) -> str:
        if path in self.named:
            return self.named[path]
        for top in self.templates:
            if path.is_relative_to(top):
                return f"template {path.relative_to(top)}"
        if path.name.endswith((".tgz", ".tbz", ".txz", ".tar")):
            return f"package {path.name}"
        return f"file {path}"
