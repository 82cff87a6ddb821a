"""Checks that span several keys, run once every key is read on its own."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from pathlib import PurePath

from tasks.cgd.table import CIPHERS, DEFAULT_CIPHER
from tasks.images.private import SHARED
from tasks.site.netbsd import allowed_keylengths, this_dom0
from tasks.site.reader import INVALID, Context, Found, Layer
from tasks.site.settings import DomainEntry, HostEntry
from tasks.site.sizes import FS_SIZES, format_size
from tasks.sources.urls import Url


def check_site(
    layer: Layer,
    defaults: Layer,
    entries: Sequence[DomainEntry],
    ctx: Context,
    hosts: Sequence[HostEntry] = (),
) -> None:
    """Report what no single key shows: keys that exclude or depend on each other."""
    _check_reserved_names(layer, entries, ctx)
    _check_hosts(layer, defaults, entries, hosts, ctx)
    _check_root_source(layer, ctx)
    _check_dom0(layer, ctx)
    _check_downloads(layer, ctx)
    _check_makedev(layer, ctx)
    for domain_layer in (defaults, *(entry.layer for entry in entries)):
        _check_pkg_source(domain_layer, ctx)
    for group in ("swap", "local"):
        _check_keylengths(defaults, entries, ctx, group)
    _check_encrypted_fs(defaults, entries, ctx)
    _check_image_sizes(layer, defaults, entries, ctx)


def _check_reserved_names(layer: Layer, entries: Sequence[DomainEntry], ctx: Context) -> None:
    """A domU's images are in images/NAME: a name the output's images/ uses for something
    else (the generations, the kernel published beside root.img) would mix them."""
    kernel = layer.values.get("root.kernel")
    taken = {name: "the generations of root.img and pkg.img" for name in SHARED}
    if kernel is not None and kernel.value is not INVALID:
        name = kernel.value if isinstance(kernel.value, str) else getattr(kernel.value, "name", "")
        taken[PurePath(str(name)).name] = "the kernel, published beside root.img"
    for entry in entries:
        if entry.name in taken:
            ctx.report(
                entry.line,
                f"domains.{entry.name}",
                f"reserved: images/{entry.name} of the output holds {taken[entry.name]}; "
                "name the domain otherwise",
            )


def _check_hosts(
    layer: Layer,
    defaults: Layer,
    entries: Sequence[DomainEntry],
    hosts: Sequence[HostEntry],
    ctx: Context,
) -> None:
    """With `hosts`, every domU names one of them; without, none names any. Two hosts never
    share one output directory on one machine: each would collect the other's images."""
    given = layer.values.get("hosts")
    if given is not None and given.value is INVALID:
        return
    names = {host.name for host in hosts}
    default = defaults.values.get("host")
    for found in (default, *(entry.layer.values.get("host") for entry in entries)):
        if found is None or found.value is INVALID or found.value in names:
            continue
        if given is None:
            ctx.report(
                found.line,
                found.key,
                f"names host '{found.value}', but the site has no `hosts`; add it under "
                "hosts: (with its address), or remove the key to build for this machine",
            )
        else:
            ctx.report(
                found.line,
                found.key,
                f"expected one of the hosts {', '.join(sorted(names))} (hosts, line "
                f"{given.line}), got '{found.value}'",
            )
    if given is not None and default is None:
        for entry in entries:
            if "host" not in entry.layer.values:
                ctx.report(
                    entry.line,
                    f"domains.{entry.name}",
                    f"no host: with `hosts` (line {given.line}) every domain names the dom0 "
                    "it runs on; set domains." + entry.name + ".host or defaults.host",
                )
    seen: dict[tuple[object, ...], HostEntry] = {}
    for host in hosts:
        place = tuple(_host_value(host, key) for key in ("address", "port", "output"))
        if INVALID in place:
            continue
        other = seen.setdefault(place, host)
        if other is not host:
            ctx.report(
                host.line,
                f"hosts.{host.name}",
                f"same address, port and output as hosts.{other.name} (line {other.line}); "
                "expected each host to have its own output directory",
            )


def _host_value(host: HostEntry, key: str) -> object:
    from tasks.site.settings import HOST

    found = host.layer.values.get(key)
    return HOST.settings[key].default if found is None else found.value


def _check_dom0(layer: Layer, ctx: Context) -> None:
    """Unset, `dom0` is this host's system, which must then be one a dom0 runs."""
    if "dom0" not in layer.values and this_dom0() is None:
        ctx.report(
            1,
            "dom0",
            f"required on {platform.system() or 'this system'}, which is not a dom0 domus "
            "knows; set dom0: netbsd or dom0: linux (the system the domUs run on)",
        )


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


def _check_image_sizes(
    layer: Layer, defaults: Layer, entries: Sequence[DomainEntry], ctx: Context
) -> None:
    """Each image size against what its file system can hold, so that makefs or mke2fs never
    fails on it halfway through a build; reported once, where the size is written."""
    pairs = [(layer.values.get("root.size"), layer.values.get("root.fs"))]
    for group in ("local", "pkg"):
        for entry in entries:
            layers = (entry.layer, defaults)
            size, fs = (
                next((lay.values[key] for lay in layers if key in lay.values), None)
                for key in (f"{group}.size", f"{group}.fs")
            )
            pairs.append((size, fs))
    reported = set()
    for size, fs in pairs:
        name = "ffs" if fs is None else fs.value
        if size is None or INVALID in (size.value, name) or (size.key, name) in reported:
            continue
        reported.add((size.key, name))
        limits = FS_SIZES[name]
        if size.value < limits.minimum:
            problem = f"at least {format_size(limits.minimum)}, the smallest {name} image"
        elif size.value > limits.maximum:
            problem = f"at most {format_size(limits.maximum)}, the largest {name} image"
        elif size.value % limits.block:
            problem = f"a multiple of {format_size(limits.block)}, the {name} block size"
        else:
            continue
        origin = "the default fs" if fs is None else f"{fs.key}, line {fs.line}"
        ctx.report(
            size.line,
            size.key,
            f"expected {problem} ({origin}), got {format_size(size.value)}",
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
        f"expected {allowed_keylengths(spec)} for cipher {name}{origin}, got {keylength.value}",
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
        f"does not fit cipher {cipher.value}: expected {allowed_keylengths(spec)}; "
        f"set {_parent(cipher.key)}.keylength",
    )


def _parent(key: str) -> str:
    return key.rpartition(".")[0]
