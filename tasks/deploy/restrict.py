"""The site one dom0 builds: only the domUs placed on it, its inputs where they are there.

Written from the loaded model, every value spelled out, so the dom0 reads exactly the site
this machine checked: no `defaults`, no `hosts`, no URLs (the verified downloads are
inputs like any file). Each input keeps its file name, because a generation's id holds an
input by name and content (tasks.sources.fingerprint.located_anywhere): the dom0's build of the
same inputs then finds the generation this machine built and shipped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml

from tasks.cgd.keyfiles import params_path, passphrase_path
from tasks.pkgsrc.packages import package_files
from tasks.site import DomU, Host, Site


@dataclass(frozen=True)
class Inputs:
    """The files and trees the site of one host is built from, each under a short name:
    `<n>/<its own name>`, so that names stay what they are and never clash."""

    paths: dict[str, Path]  # name -> the file or directory here

    def to(self, top: PurePosixPath) -> Callable[[Path], str]:
        """Where each input is below `top` (on the dom0)."""
        where = {path: str(top / name) for name, path in self.paths.items()}
        return lambda path: where[path]


def host_inputs(site: Site, domus: tuple[DomU, ...]) -> Inputs:
    """Every input of the site restricted to `domus`: the root's sources and kernel, the
    site's templates, the package files (with the dependencies found beside them, in the
    same directory) and pkg trees of those domUs."""
    paths: dict[str, Path] = {}
    seen: dict[Path, str] = {}

    def add(path: Path) -> None:
        if path not in seen:
            seen[path] = name = f"{len(seen)}/{path.name}"
            paths[name] = path

    source = site.root.source
    for path in (source.tree, source.metalog, source.image, *source.sets, site.root.kernel):
        if path is not None:
            add(path)
    if site.templates is not None:
        add(site.templates)
    for domu in domus:
        if domu.pkg.source.tree is not None:
            add(domu.pkg.source.tree)
        # dependencies are found beside the named package: its whole directory goes
        for package in package_files(domu.pkg.source.packages):
            add(package.parent)
    return Inputs(paths)


def restricted_site(
    site: Site,
    host: Host,
    output: str,
    keys: str,
    where: Callable[[Path], str],
) -> dict[str, object]:
    """The site of `host` as YAML data: its domUs, `output` and `keys` on the machine that
    builds it, every input path as `where` places it."""
    domus = site.domus_on(host.name)
    root = site.root
    source: dict[str, object] = {}
    if root.source.tree is not None:
        source["tree"] = where(root.source.tree)
    if root.source.metalog is not None:
        source["metalog"] = where(root.source.metalog)
    if root.source.image is not None:
        source["image"] = where(root.source.image)
    if root.source.sets:
        source["sets"] = [where(path) for path in root.source.sets]
    data: dict[str, object] = {
        "output": output,
        "keys": keys,
        "dom0": host.dom0,
        "generations": {"keep": site.generations.keep},
        "converge": {"keep_backups": site.converge.keep_backups},
        "blockdev": {
            "backend": site.blockdev.backend,
            "units": host.units,
            "wait": site.blockdev.wait,
        },
        "root": {
            "source": source,
            "kernel": where(root.kernel),
            "size": root.size,
            "fs": root.fs,
            "makedev": {"add": list(root.makedev_add), "remove": list(root.makedev_remove)},
        },
        "domains": {domu.name: _domain(domu, where) for domu in domus},
    }
    if site.templates is not None:
        data["templates"] = where(site.templates)
    return data


def _domain(domu: DomU, where: Callable[[Path], str]) -> dict[str, object]:
    pkg_source: dict[str, object] | None = None
    if domu.pkg.source.tree is not None:
        pkg_source = {"tree": where(domu.pkg.source.tree)}
    elif domu.pkg.source.packages:
        pkg_source = {
            "packages": [
                f"{where(package.parent)}/{package.name}" for package in domu.pkg.source.packages
            ]
        }
    return {
        "memory": f"{domu.memory}m",
        "vcpus": domu.vcpus,
        "vif": list(domu.vif),
        "rc_conf": dict(domu.rc_conf),
        "local": {
            "size": domu.local.size,
            "fs": domu.local.fs,
            "encrypt": domu.local.encrypt,
            "cipher": domu.local.cipher,
            "keylength": domu.local.keylength,
        },
        "pkg": {"size": domu.pkg.size, "fs": domu.pkg.fs, "source": pkg_source},
        "swap": {
            "size": domu.swap.size,
            "cipher": domu.swap.cipher,
            "keylength": domu.swap.keylength,
        },
    }


# libyaml's emitter where PyYAML has it: a site of a thousand domUs is written three times
# a host by every deploy, which the pure-Python one takes seconds for
DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def site_text(data: dict[str, object]) -> str:
    header = "# Written by `./domus deploy` from the site of the machine that deploys: edit that.\n"
    return header + yaml.dump(data, Dumper=DUMPER, sort_keys=False, default_flow_style=False)


def host_keys(site: Site, host: Host) -> list[Path]:
    """The key files of the domUs on `host` that exist: those and no other go there."""
    keys = []
    for domu in site.domus_on(host.name):
        if domu.local_encrypted:
            files = (params_path(site.keys, domu.name), passphrase_path(site.keys, domu.name))
            keys.extend(path for path in files if path.exists())
    return keys
