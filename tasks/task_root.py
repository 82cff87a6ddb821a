"""The `root` task: what the shared root.img is built from."""

from __future__ import annotations

from pathlib import Path

from doit.tools import config_changed

from tasks.actions import Deferred
from tasks.contexts import root_context
from tasks.fingerprint import TreeUnchanged
from tasks.keyfiles import params_path
from tasks.render import Templates
from tasks.site import Layout, Site, plain


def input_files(site: Site, templates: Templates) -> dict[str, Path]:
    source = site.root.source
    files = {"kernel": site.root.kernel}
    files.update({f"set {path.name}": path for path in source.sets})
    if source.metalog is not None:
        files["metalog"] = source.metalog
    if source.image is not None:
        files["source image"] = source.image
    files.update(
        {
            f"template {path}": path
            for path in templates.files(f"root/{name}" for name in templates.names("root"))
        }
    )
    # domUs that open an encrypted /local themselves find their params (no key) in root.img
    files.update(
        {
            f"cgd params {d.name}": params_path(site.keys, d.name)
            for d in site.domus
            if d.local.encrypt == "domu"
        }
    )
    return files


def config_slice(site: Site) -> dict[str, object]:
    root = plain(site.root)
    assert isinstance(root, dict)
    # where a set or the kernel is downloaded from is not an input: its checksum is (the
    # cached copy's hash), so moving to another mirror rebuilds nothing
    root.pop("downloads", None)
    return {"root": root, "templates": root_context(site)}


def task(site: Site, layout: Layout, templates: Templates) -> dict[str, object]:
    files = input_files(site, templates)
    config = config_slice(site)
    uptodate: list[object] = [config_changed(config)]
    if site.root.source.tree is not None:
        uptodate.append(TreeUnchanged(site.root.source.tree))
    return {
        "doc": "the shared read-only root.img and the kernel beside it",
        "actions": [
            (Deferred("tasks.build_root:build_root"), [site, layout, templates, files, config])
        ],
        "file_dep": sorted(map(str, files.values())),
        "targets": [
            str(layout.root_image),
            str(layout.kernel(site.root.kernel.name)),
            str(layout.root_manifest),
        ],
        "uptodate": uptodate,
        "clean": True,
    }
