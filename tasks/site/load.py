"""The site file: read, checked as a whole before any work starts, frozen into the model.

Every problem in the file is reported at once, one line each, naming the file, the line
and the dotted key, so an operator fixes them in one pass.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import yaml
from yaml.nodes import MappingNode

from tasks.errors import DomusError
from tasks.site.checks import check_site
from tasks.site.model import (
    BlockdevSpec,
    DomU,
    GenerationsSpec,
    ImageSpec,
    PkgSource,
    PkgSpec,
    RootSource,
    RootSpec,
    Site,
    SwapSpec,
)
from tasks.site.netbsd import CIPHERS
from tasks.site.reader import INVALID, Context, Layer, Problem, read_layer, resolve
from tasks.site.settings import DOMAIN, SITE, DomainEntry
from tasks.urls import local_files

DEFAULT_SITE = Path("config/site.yaml")
# libyaml composes a 100-domain site several times faster than the pure-Python parser
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ConfigError(DomusError):
    """Everything wrong with a site file, one problem a line."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))

    def __str__(self) -> str:
        return self.message


def load_site(path: Path) -> Site:
    """Read and check the site file at `path`; raise ConfigError listing every problem."""
    path = Path(path)
    absolute = Path(os.path.abspath(path))
    ctx = Context(str(path), absolute.parent)
    top = _compose(path, absolute, ctx)
    site = _read_site(top, absolute, ctx) if top is not None else None
    if ctx.problems or site is None:
        raise ConfigError(_in_file_order(ctx.problems))
    return site


def _in_file_order(problems: list[Problem]) -> list[Problem]:
    # a node reached twice (through a YAML alias or merge) may report the same thing twice
    return sorted(dict.fromkeys(problems), key=lambda problem: problem.line)


def _compose(path: Path, absolute: Path, ctx: Context) -> MappingNode | None:
    text = _read_text(path, absolute, ctx)
    if text is None:
        return None
    try:
        node = yaml.compose(text, Loader=LOADER)
    except yaml.MarkedYAMLError as error:
        ctx.report(*_yaml_error(error))
        return None
    except yaml.reader.ReaderError as error:
        line = text[: error.position].count("\n") + 1
        ctx.report(line, "", f"invalid YAML: {error.reason}")
        return None
    if node is None:
        ctx.report(1, "", "expected a mapping with the keys root and domains, the file is empty")
        return None
    if not isinstance(node, MappingNode):
        line = node.start_mark.line + 1
        ctx.report(line, "", "expected a mapping with the keys root and domains")
        return None
    return node


def _read_text(path: Path, absolute: Path, ctx: Context) -> str | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        ctx.report(0, "", f"no such file: {absolute}")
        return None
    except IsADirectoryError:
        ctx.report(0, "", f"expected a YAML file, but {absolute} is a directory")
        return None
    except OSError as error:
        ctx.report(0, "", f"cannot read {absolute}: {error.strerror}")
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        ctx.report(line, "", f"expected UTF-8 text, got the byte {data[error.start]:#04x}")
        return None


def _yaml_error(error: yaml.MarkedYAMLError) -> tuple[int, str, str]:
    mark = error.problem_mark or error.context_mark
    line = mark.line + 1 if mark is not None else 0
    message = f"invalid YAML: {error.problem or error.context}"
    if error.problem and error.context:
        where = f" on line {error.context_mark.line + 1}" if error.context_mark else ""
        message += f" ({error.context}{where})"
    return line, "", message


def _read_site(top: MappingNode, absolute: Path, ctx: Context) -> Site | None:
    layer = read_layer(top, "", SITE, ctx)
    defaults = _value(layer, "defaults") or Layer()
    entries: tuple[DomainEntry, ...] = _value(layer, "domains") or ()
    check_site(layer, defaults, entries, ctx)
    if ctx.problems:
        return None
    return _build_site(absolute, layer, defaults, entries, ctx)


def _value(layer: Layer, key: str) -> object:
    found = layer.values.get(key)
    return None if found is None or found.value is INVALID else found.value


# --- building the model ----------------------------------------------------------------


def _build_site(
    absolute: Path, layer: Layer, defaults: Layer, entries: Sequence[DomainEntry], ctx: Context
) -> Site:
    def get(key: str) -> object:
        return resolve(SITE, key, (layer,))

    output = get("output")
    output = output if isinstance(output, Path) else ctx.path(str(output))
    locks = get("locks") or output / "locks"
    keys = get("keys")
    keys = keys if isinstance(keys, Path) else ctx.path(str(keys))
    return Site(
        path=absolute,
        output=output,
        templates=get("templates"),
        locks=locks,
        keys=keys,
        root=_build_root(layer, output / "cache" / "downloads"),
        domus=tuple(_build_domu(entry, defaults) for entry in entries),
        blockdev=BlockdevSpec(
            backend=get("blockdev.backend"), units=get("blockdev.units"), wait=get("blockdev.wait")
        ),
        generations=GenerationsSpec(keep=get("generations.keep")),
    )


def _build_root(layer: Layer, downloads: Path) -> RootSpec:
    def get(key: str) -> object:
        return resolve(SITE, key, (layer,))

    sets, kernel, fetched = local_files(
        get("root.source.sets"), get("root.source.sha512"), get("root.kernel"), downloads
    )

    add = get("root.makedev.add")
    remove = get("root.makedev.remove")
    if "root.makedev.remove" not in layer.values:
        remove = tuple(device for device in remove if device not in add)
    return RootSpec(
        source=RootSource(
            tree=get("root.source.tree"),
            metalog=get("root.source.metalog"),
            sets=sets,
            image=get("root.source.image"),
        ),
        kernel=kernel,
        size=get("root.size"),
        fs=get("root.fs"),
        makedev_add=add,
        makedev_remove=remove,
        downloads=fetched,
    )


def _build_domu(entry: DomainEntry, defaults: Layer) -> DomU:
    layers = (entry.layer, defaults)

    def get(key: str) -> object:
        return resolve(DOMAIN, key, layers)

    cipher = get("swap.cipher")
    return DomU(
        name=entry.name,
        memory=get("memory"),
        vcpus=get("vcpus"),
        vif=get("vif"),
        rc_conf=_rc_conf(entry, defaults),
        local=ImageSpec(
            size=get("local.size"),
            fs=get("local.fs"),
            encrypt=get("local.encrypt"),
            cipher=get("local.cipher"),
            keylength=get("local.keylength") or CIPHERS[get("local.cipher")].default_keylength,
        ),
        pkg=PkgSpec(
            size=get("pkg.size"),
            fs=get("pkg.fs"),
            source=PkgSource(tree=get("pkg.source.tree"), packages=get("pkg.source.packages")),
        ),
        swap=SwapSpec(
            size=get("swap.size"),
            cipher=cipher,
            keylength=get("swap.keylength") or CIPHERS[cipher].default_keylength,
        ),
    )


def _rc_conf(entry: DomainEntry, defaults: Layer) -> tuple[tuple[str, str], ...]:
    # a variable set again keeps its first place, so the built-ins always lead
    variables = dict(DOMAIN.settings["rc_conf"].default)
    variables["hostname"] = entry.name
    for layer in (defaults, entry.layer):
        found = layer.values.get("rc_conf")
        if found is not None:
            variables.update(found.value)
    return tuple(variables.items())
