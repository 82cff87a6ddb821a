"""The `pkg:NAME` tasks: what each domU's /usr/pkg image is built from."""

from __future__ import annotations

from doit.tools import config_changed

from tasks.actions import Deferred
from tasks.fingerprint import TreeUnchanged
from tasks.pkgsrc import package_files
from tasks.site import DomU, Layout, plain


def task(domu: DomU, layout: Layout) -> dict[str, object]:
    source = domu.pkg.source
    uptodate: list[object] = [config_changed(plain(domu.pkg))]
    if source.tree is not None:
        uptodate.append(TreeUnchanged(source.tree))
    return {
        "name": domu.name,
        "doc": f"pkg.img of {domu.name}: /usr/pkg",
        "actions": [(Deferred("tasks.build_pkg:build_pkg"), [domu, layout])],
        # The named packages and the dependencies found beside them: a change to either
        # rebuilds the image.
        "file_dep": [str(path) for path in package_files(source.packages)],
        "targets": [str(layout.pkg_image(domu.name))],
        "uptodate": uptodate,
        "clean": True,
    }
