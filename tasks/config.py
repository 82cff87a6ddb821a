"""The site file: read, checked as a whole before any work starts, frozen into the model.

Every problem in the file is reported at once, one line each, naming the file, the line
and the dotted key, so an operator fixes them in one pass. The settings themselves (keys,
defaults, help) live in tasks.settings.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from yaml.nodes import MappingNode

from tasks.errors import SiteError, print_error
from tasks.settings import (
    CIPHERS,
    DEFAULT_CIPHER,
    DOMAIN,
    INVALID,
    SITE,
    Context,
    DomainEntry,
    Found,
    Layer,
    Problem,
    read_layer,
    reference_markdown,
    resolve,
)
from tasks.urls import Download, Url, local_files

__all__ = [
    "BlockdevSpec",
    "ConfigError",
    "DomU",
    "ImageSpec",
    "PkgSource",
    "PkgSpec",
    "Problem",
    "RootSource",
    "RootSpec",
    "Site",
    "SwapSpec",
    "load_site",
    "plain",
    "reference_markdown",
]

# libyaml composes a 100-domain site several times faster than the pure-Python parser
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# --- the model -------------------------------------------------------------------------


@dataclass(frozen=True)
class RootSource:
    tree: Path | None
    metalog: Path | None
    sets: tuple[Path, ...]
    image: Path | None = None  # an existing root.img, read through a block device


@dataclass(frozen=True)
class RootSpec:
    source: RootSource
    kernel: Path
    size: int  # bytes
    fs: str
    makedev_add: tuple[str, ...]
    makedev_remove: tuple[str, ...]
    # sets and kernel given as URLs; `source.sets` and `kernel` name their verified copies
    downloads: tuple[Download, ...] = ()


@dataclass(frozen=True)
class ImageSpec:
    size: int  # bytes
    fs: str
    encrypt: str = "none"  # local.img only: none, dom0 or domu
    cipher: str = DEFAULT_CIPHER
    keylength: int = 256  # bits


@dataclass(frozen=True)
class PkgSource:
    """What goes into pkg.img; neither a tree nor packages means an empty image."""

    tree: Path | None
    packages: tuple[Path, ...]


@dataclass(frozen=True)
class PkgSpec:
    size: int  # bytes
    fs: str
    source: PkgSource


@dataclass(frozen=True)
class SwapSpec:
    size: int  # bytes
    cipher: str
    keylength: int  # bits


@dataclass(frozen=True)
class DomU:
    name: str
    memory: int  # MiB
    vcpus: int
    vif: tuple[str, ...]
    rc_conf: tuple[tuple[str, str], ...]  # built-ins first, then defaults, then the entry
    local: ImageSpec
    pkg: PkgSpec
    swap: SwapSpec


@dataclass(frozen=True)
class BlockdevSpec:
    """How images are attached as root: the backend, the size of the unit pool, the wait."""

    backend: str = "auto"  # auto, vnd, loop or none
    units: int = 4
    wait: int = 600  # seconds


@dataclass(frozen=True)
class GenerationsSpec:
    keep: int = 3  # newest generations of each image that garbage collection keeps


@dataclass(frozen=True)
class Site:
    path: Path
    output: Path
    templates: Path | None
    locks: Path
    keys: Path
    root: RootSpec
    domus: tuple[DomU, ...]  # in file order
    blockdev: BlockdevSpec = BlockdevSpec()
    generations: GenerationsSpec = GenerationsSpec()


class ConfigError(SiteError):
    """Everything wrong with a site file, one problem a line."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))

    def __str__(self) -> str:
        return self.message


# --- loading ---------------------------------------------------------------------------


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
    _check_root_source(layer, ctx)
    _check_downloads(layer, ctx)
    _check_makedev(layer, ctx)
    for domain_layer in (defaults, *(entry.layer for entry in entries)):
        _check_pkg_source(domain_layer, ctx)
    for group in ("swap", "local"):
        _check_keylengths(defaults, entries, ctx, group)
    _check_encrypted_fs(defaults, entries, ctx)
    if ctx.problems:
        return None
    return _build_site(absolute, layer, defaults, entries, ctx)


def _value(layer: Layer, key: str) -> object:
    found = layer.values.get(key)
    return None if found is None or found.value is INVALID else found.value


# --- checks that span several keys ----------------------------------------------------


def _check_root_source(layer: Layer, ctx: Context) -> None:
    source = layer.groups.get("root.source")
    if source is None or source.value is INVALID:
        return  # reported as missing or as not a mapping
    tree = layer.values.get("root.source.tree")
    metalog = layer.values.get("root.source.metalog")
    given = [
        name
        for name in ("tree", "sets", "image")
        if layer.values.get(f"root.source.{name}") is not None
    ]
    if len(given) > 1:
        ctx.report(
            source.line,
            source.key,
            f"expected exactly one of 'tree', 'sets' or 'image', got {' and '.join(given)}",
        )
    elif not given:
        ctx.report(
            source.line,
            source.key,
            "expected exactly one of 'tree' (a directory), 'sets' (set tarballs) or 'image' "
            "(a root.img), got neither",
        )
    if metalog is not None and tree is None:
        ctx.report(
            metalog.line,
            metalog.key,
            "only allowed with 'tree'; set tarballs and images carry their own owners and modes",
        )


def _check_downloads(layer: Layer, ctx: Context) -> None:
    """A SHA512 file only where something is downloaded; each download under its own name."""
    sets = layer.values.get("root.source.sets")
    kernel = layer.values.get("root.kernel")
    set_urls = (
        []
        if sets is None or sets.value is INVALID
        else [item for item in sets.value if isinstance(item, Url)]
    )
    kernel_url = kernel.value if kernel is not None and isinstance(kernel.value, Url) else None
    sha512 = layer.values.get("root.source.sha512")
    if sha512 is not None and not set_urls:
        ctx.report(sha512.line, sha512.key, "only used with set URLs, but the sets are all files")
    names = [url.name for url in set_urls]
    if kernel_url is not None:
        names.append(kernel_url.name.removesuffix(".gz"))
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice and sets is not None:
        ctx.report(
            sets.line,
            sets.key,
            "expected each download under a name of its own, but "
            f"{', '.join(twice)} would be kept twice in the download cache",
        )


def _check_makedev(layer: Layer, ctx: Context) -> None:
    # only when both lists are written out: the default remove list gives way to `add`
    add = layer.values.get("root.makedev.add")
    remove = layer.values.get("root.makedev.remove")
    if add is None or remove is None or INVALID in (add.value, remove.value):
        return
    both = [device for device in add.value if device in set(remove.value)]
    if both:
        names = ", ".join(f"'{device}'" for device in both)
        ctx.report(
            add.line,
            add.key,
            f"expected devices not also in {remove.key} (line {remove.line}), got {names}",
        )


def _check_pkg_source(layer: Layer, ctx: Context) -> None:
    source = layer.groups.get("pkg.source")
    if source is None:
        return
    if "pkg.source.tree" in layer.values and "pkg.source.packages" in layer.values:
        ctx.report(
            source.line,
            source.key,
            "expected only one of 'tree' or 'packages' (or null for an empty image), got both",
        )


def _check_encrypted_fs(defaults: Layer, entries: Sequence[DomainEntry], ctx: Context) -> None:
    """A local.img the domU opens with a passphrase must be FFS: cgdconfig tells a wrong
    passphrase by the missing FFS superblock (verify_method ffs), and ext2fs has no such
    check. The dom0 opens ext2fs ones too (its key is stored, not typed)."""
    for entry in entries:
        layers = (entry.layer, defaults)
        encrypt = next(
            (lay.values["local.encrypt"] for lay in layers if "local.encrypt" in lay.values), None
        )
        fs = next((lay.values["local.fs"] for lay in layers if "local.fs" in lay.values), None)
        if encrypt is None or fs is None or encrypt.value != "domu":
            continue
        if fs.value == "ext2fs":
            # reported where the operator wrote the domain's own choice
            where = (
                encrypt
                if encrypt.key.startswith("domains.") or not fs.key.startswith("domains.")
                else fs
            )
            ctx.report(
                where.line,
                where.key,
                f"a local.img the domU opens with a passphrase (local.encrypt: domu, "
                f"line {encrypt.line}) must be ffs, so that cgdconfig can tell a wrong "
                "passphrase; set local.fs: ffs, or local.encrypt: dom0",
            )


def _check_keylengths(
    defaults: Layer, entries: Sequence[DomainEntry], ctx: Context, group: str = "swap"
) -> None:
    """Each key length against the cipher it is used with, reported once, where written."""
    default_cipher = defaults.values.get(f"{group}.cipher")
    default_keylength = defaults.values.get(f"{group}.keylength")
    if default_keylength is not None:
        _check_keylength(default_keylength, default_cipher, ctx)
    for entry in entries:
        cipher = entry.layer.values.get(f"{group}.cipher")
        keylength = entry.layer.values.get(f"{group}.keylength")
        if keylength is not None:
            _check_keylength(keylength, cipher or default_cipher, ctx)
        elif default_keylength is not None and cipher is not None:
            _check_inherited_keylength(default_keylength, cipher, ctx)


def _check_keylength(keylength: Found, cipher: Found | None, ctx: Context) -> None:
    name = DEFAULT_CIPHER if cipher is None else cipher.value
    if INVALID in (keylength.value, name):
        return
    spec = CIPHERS[name]
    if keylength.value in spec.keylengths:
        return
    if cipher is None:
        origin = " (the default cipher)"
    elif _parent(cipher.key) != _parent(keylength.key):
        origin = f" (from {cipher.key}, line {cipher.line})"
    else:
        origin = ""
    ctx.report(
        keylength.line,
        keylength.key,
        f"expected {spec.allowed} for cipher {name}{origin}, got {keylength.value}",
    )


def _check_inherited_keylength(keylength: Found, cipher: Found, ctx: Context) -> None:
    # The value written in `defaults` is fine there; it only fails for this domain's cipher,
    # so the problem is reported at the domain, where the fix goes.
    if INVALID in (keylength.value, cipher.value):
        return
    spec = CIPHERS[cipher.value]
    if keylength.value in spec.keylengths:
        return
    ctx.report(
        cipher.line,
        cipher.key,
        f"keylength {keylength.value} inherited from {keylength.key} (line {keylength.line}) "
        f"does not fit cipher {cipher.value}: expected {spec.allowed}; "
        f"set {_parent(cipher.key)}.keylength",
    )


def _parent(key: str) -> str:
    return key.rpartition(".")[0]


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


def plain(obj: object) -> object:
    """`obj` (any model object) as JSON-able dicts, lists and strings, for hashing."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [plain(item) for item in obj]
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, str | int | float | bool):
        return obj
    raise TypeError(f"cannot turn a {type(obj).__name__} into plain data")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tasks.config",
        description="Check a site file and print its model, or print the settings reference.",
    )
    parser.add_argument("site", nargs="?", type=Path, help="site file to check")
    parser.add_argument(
        "--reference", action="store_true", help="print the settings reference (markdown)"
    )
    args = parser.parse_args(argv)
    if args.reference:
        sys.stdout.write(reference_markdown())
        return 0
    if args.site is None:
        parser.error("give a site file, or --reference")
    try:
        site = load_site(args.site)
    except ConfigError as error:
        print_error(error)
        return error.status
    print(json.dumps(plain(site), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
