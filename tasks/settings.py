"""Every setting of a site file in one table: how it is read, its default and its help.

tasks.config walks the YAML by these tables, the model's defaults come from them, and
`reference_markdown()` turns them into the README's reference, so the three cannot drift
apart. A value is read from its YAML node, not from a constructed Python object, so every
problem can name the line it is written on.
"""

from __future__ import annotations

import difflib
import os
import platform
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from tasks.sizes import EXPECTED as SIZE_EXPECTED
from tasks.sizes import SIZE_PATTERN, UNITS, MiB, format_size, parse_size
from tasks.urls import Url, looks_like_url, parse_url

NULL_TAG = "tag:yaml.org,2002:null"
STR_TAG = "tag:yaml.org,2002:str"
MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a site file, shown as `file:line: key: message`."""

    file: str
    line: int
    key: str
    message: str

    def __str__(self) -> str:
        if self.key:
            return f"{self.file}:{self.line}: {self.key}: {self.message}"
        return f"{self.file}:{self.line}: {self.message}"


class Invalid(Exception):
    """A value that cannot be used; the message says what was expected."""


class _InvalidValue:
    def __repr__(self) -> str:
        return "INVALID"


# Stands in for a value whose problem is already reported, so later checks skip it
# instead of reporting a second, derived problem.
INVALID: Final = _InvalidValue()


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Final = _Required()


def line_of(node: Node) -> int:
    return node.start_mark.line + 1


def is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == NULL_TAG


def dotted(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix and name else prefix or name


def got(node: Node) -> str:
    """What the operator wrote, for the `got ...` end of a message."""
    if isinstance(node, SequenceNode):
        return "a list" if node.value else "an empty list"
    if isinstance(node, MappingNode):
        return "a mapping" if node.value else "an empty mapping"
    if node.tag == NULL_TAG:
        return "null"
    if node.tag == STR_TAG:
        text = repr(node.value)
        return text if len(text) <= 60 else text[:56] + "...'"
    return str(node.value)


def or_list(words: Sequence[object]) -> str:
    words = [str(word) for word in words]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


class Context:
    """What reading one site file needs: where it is, and the problems found so far."""

    def __init__(self, file: str, base: Path) -> None:
        self.file = file
        self.base = base
        self.problems: list[Problem] = []
        self._constructor = yaml.constructor.SafeConstructor()

    def report(self, where: Node | int, key: str, message: str) -> None:
        line = where if isinstance(where, int) else line_of(where)
        self.problems.append(Problem(self.file, line, key, message))

    def scalar(self, node: Node, expected: str) -> Any:
        """The Python value of a scalar node (YAML 1.1 types: `yes` is True, `12` is 12)."""
        if not isinstance(node, ScalarNode):
            raise Invalid(f"expected {expected}, got {got(node)}")
        if node.tag == STR_TAG:
            return node.value
        try:
            return self._constructor.construct_object(node)
        except yaml.YAMLError:
            raise Invalid(f"expected {expected}, got a value tagged {node.tag}") from None

    def path(self, text: str) -> Path:
        """`text` as an absolute path; a relative one starts at the site file's directory."""
        return Path(os.path.abspath(self.base / os.path.expanduser(text)))

    def pairs(self, node: MappingNode, key: str) -> list[tuple[ScalarNode, Node]]:
        """The key/value pairs of a mapping in file order, each key once.

        PyYAML silently keeps the last of two equal keys; here the second one is reported.
        Keys merged in with `<<: *anchor` come first and give way to the mapping's own keys,
        as YAML defines.
        """
        merged: dict[str, tuple[ScalarNode, Node]] = {}
        own: dict[str, tuple[ScalarNode, Node]] = {}
        for knode, vnode in node.value:
            if knode.tag == MERGE_TAG:
                self._merge_into(merged, vnode, key)
            elif not isinstance(knode, ScalarNode):
                self.report(knode, key, f"expected a plain key, got {got(knode)}")
            elif knode.value in own:
                first = line_of(own[knode.value][0])
                self.report(
                    knode,
                    dotted(key, knode.value),
                    f"duplicate key; first set on line {first} (YAML would keep only the last)",
                )
            else:
                own[knode.value] = (knode, vnode)
        if not merged:
            return list(own.values())
        merged.update(own)
        return list(merged.values())

    def _merge_into(self, merged: dict[str, tuple[ScalarNode, Node]], node: Node, key: str) -> None:
        sources = node.value if isinstance(node, SequenceNode) else [node]
        for source in sources:
            if not isinstance(source, MappingNode):
                self.report(source, key, f"expected a mapping to merge with <<, got {got(source)}")
                continue
            # the first mapping merged in wins, as YAML defines for `<<: [*a, *b]`
            for pair in self.pairs(source, key):
                merged.setdefault(pair[0].value, pair)


# --- kinds: how one value is written ---------------------------------------------------


class Kind:
    """How one setting's value is written in YAML, and how it is read and shown."""

    type_doc = ""
    expected = ""

    def parse(self, node: Node, key: str, ctx: Context) -> Any:
        raise NotImplementedError

    def show(self, value: Any) -> str:
        return str(value)

    def fail(self, node: Node) -> Invalid:
        return Invalid(f"expected {self.expected}, got {got(node)}")


class Size(Kind):
    type_doc = "size"
    expected = SIZE_EXPECTED

    def parse(self, node: Node, key: str, ctx: Context) -> int:
        value = ctx.scalar(node, self.expected)
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise self.fail(node)
        try:
            return parse_size(value)
        except ValueError as error:
            raise Invalid(str(error)) from None

    def show(self, value: int) -> str:
        return format_size(value)


class Memory(Kind):
    """Domain memory in MiB; a bare number counts MiB, as in xl's `memory = 256`."""

    type_doc = "size (bare number: MiB)"
    expected = "a size such as 256m or 1g"
    minimum = 32

    def parse(self, node: Node, key: str, ctx: Context) -> int:
        value = ctx.scalar(node, self.expected)
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise self.fail(node)
        if isinstance(value, int):
            mib = value
        else:
            match = SIZE_PATTERN.fullmatch(value)
            if match is None:
                raise self.fail(node)
            size = int(match[1]) * (UNITS[match[2].lower()] if match[2] else MiB)
            if size % MiB:
                raise Invalid(f"expected a whole number of MiB such as 256m, got {got(node)}")
            mib = size // MiB
        if mib < self.minimum:
            raise Invalid(f"expected at least {self.minimum}m, got {got(node)}")
        return mib

    def show(self, value: int) -> str:
        return format_size(value * MiB)


class Integer(Kind):
    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high
        self.type_doc = f"integer {low}..{high}"
        self.expected = f"an integer from {low} to {high}"

    def parse(self, node: Node, key: str, ctx: Context) -> int:
        value = ctx.scalar(node, self.expected)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(node)
        if not self.low <= value <= self.high:
            raise self.fail(node)
        return value


class Choice(Kind):
    def __init__(self, choices: Iterable[str]) -> None:
        self.choices = tuple(choices)
        self.type_doc = " | ".join(f"`{choice}`" for choice in self.choices)
        self.expected = "one of " + ", ".join(self.choices)

    def parse(self, node: Node, key: str, ctx: Context) -> str:
        value = ctx.scalar(node, self.expected)
        if not isinstance(value, str) or value not in self.choices:
            raise self.fail(node)
        return value


class Word(Kind):
    """A string that must match a pattern (it ends up in a shell script or an xl config)."""

    def __init__(self, pattern: str, expected: str, type_doc: str) -> None:
        self.pattern = re.compile(pattern)
        self.expected = expected
        self.type_doc = type_doc

    def parse(self, node: Node, key: str, ctx: Context) -> str:
        value = ctx.scalar(node, self.expected)
        if not isinstance(value, str) or not self.pattern.fullmatch(value):
            raise self.fail(node)
        return value


class PathKind(Kind):
    """A file or directory; relative to the site file's directory."""

    def __init__(
        self,
        what: str,
        must_exist: bool = True,
        suffixes: tuple[str, ...] = (),
        no_comma: str = "",
    ) -> None:
        self.what = what
        self.must_exist = must_exist
        self.suffixes = suffixes
        self.no_comma = no_comma  # why a comma is refused, when it is
        self.type_doc = what
        self.expected = f"the path of a {what}"

    def parse(self, node: Node, key: str, ctx: Context) -> Path:
        value = ctx.scalar(node, self.expected)
        if not isinstance(value, str) or not value:
            raise self.fail(node)
        if self.no_comma and "," in value:
            raise Invalid(
                f"expected a {self.what} without a comma ({self.no_comma}), got {got(node)}"
            )
        if self.suffixes and not value.endswith(self.suffixes):
            endings = or_list(self.suffixes)
            raise Invalid(f"expected a file name ending in {endings}, got {got(node)}")
        path = ctx.path(value)
        self._check(path)
        return path

    def _check(self, path: Path) -> None:
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            if self.must_exist:
                raise Invalid(f"no such {self.what}: {path}") from None
            return
        except OSError as error:
            raise Invalid(f"cannot use {path}: {error.strerror}") from None
        if self.what == "directory" and not stat.S_ISDIR(mode):
            raise Invalid(f"expected a directory, but {path} is not one")
        if self.what == "file" and not stat.S_ISREG(mode):
            raise Invalid(f"expected a file, but {path} is not a regular file")


class FileOrUrl(PathKind):
    """A file, or an http, https or ftp URL (downloaded and checked against a SHA512 file)."""

    def __init__(self, suffixes: tuple[str, ...] = ()) -> None:
        super().__init__("file", suffixes=suffixes)
        self.type_doc = "file or URL"

    def parse(self, node: Node, key: str, ctx: Context) -> Path | Url:
        value = ctx.scalar(node, self.expected)
        if not isinstance(value, str) or not looks_like_url(value):
            return super().parse(node, key, ctx)
        try:
            url = parse_url(value)
        except ValueError as error:
            raise Invalid(str(error)) from None
        if self.suffixes and not url.name.endswith(self.suffixes):
            endings = or_list(self.suffixes)
            raise Invalid(f"expected a URL of a file ending in {endings}, got {got(node)}")
        return url


class ListOf(Kind):
    """A list whose items are each read by `item`; each bad item is reported on its line."""

    def __init__(
        self, item: Kind, expected: str, min_items: int = 0, type_doc: str | None = None
    ) -> None:
        self.item = item
        self.expected = expected
        self.min_items = min_items
        self.type_doc = type_doc or f"list of {item.type_doc}s"

    def parse(self, node: Node, key: str, ctx: Context) -> tuple[Any, ...] | _InvalidValue:
        if not isinstance(node, SequenceNode) or len(node.value) < self.min_items:
            raise self.fail(node)
        items = []
        ok = True
        for index, item in enumerate(node.value):
            try:
                items.append(self.item.parse(item, f"{key}[{index}]", ctx))
            except Invalid as error:
                ctx.report(item, f"{key}[{index}]", str(error))
                ok = False
        return tuple(items) if ok else INVALID

    def show(self, value: tuple[Any, ...]) -> str:
        return " ".join(self.item.show(item) for item in value) if value else "none"


RC_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
RC_NAME_RULE = (
    "expected an rc.conf variable name: letters, digits and '_', not starting with a digit"
)
RC_VALUE = "a string, an integer or yes/no"


class RcConf(Kind):
    """rc.conf variables; merged variable by variable across built-ins, defaults and domain."""

    type_doc = "mapping: variable → string, integer or yes/no"
    expected = "a mapping of rc.conf variable to value"

    def parse(self, node: Node, key: str, ctx: Context) -> dict[str, str] | _InvalidValue:
        if not isinstance(node, MappingNode):
            raise self.fail(node)
        variables: dict[str, str] = {}
        ok = True
        for knode, vnode in ctx.pairs(node, key):
            name = knode.value
            if not RC_NAME.fullmatch(name):
                ctx.report(knode, f"{key}.{name}", RC_NAME_RULE)
                ok = False
                continue
            try:
                variables[name] = self._value(vnode, ctx)
            except Invalid as error:
                ctx.report(vnode, f"{key}.{name}", str(error))
                ok = False
        return variables if ok else INVALID

    def _value(self, node: Node, ctx: Context) -> str:
        value = ctx.scalar(node, RC_VALUE)
        if isinstance(value, bool):
            return "YES" if value else "NO"
        if isinstance(value, int):
            # as written: YAML 1.1 would turn `umask: 022` into 18
            return str(node.value)
        if not isinstance(value, str):
            raise Invalid(f"expected {RC_VALUE} (quote anything else), got {got(node)}")
        if "\n" in value or "\r" in value:
            raise Invalid(f"expected a value on one line, got {got(node)}")
        return value

    def show(self, value: tuple[tuple[str, str], ...]) -> str:
        # shown as rc.conf would have it
        return " ".join(
            f'{name}="{text}"' if " " in text else f"{name}={text}" for name, text in value
        )


class KeyLength(Kind):
    type_doc = "integer (bits)"
    expected = "a key length in bits such as 256"

    def parse(self, node: Node, key: str, ctx: Context) -> int:
        value = ctx.scalar(node, self.expected)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise self.fail(node)
        return value


# --- the settings tables ---------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    key: str  # dotted, relative to the table's mapping
    kind: Kind
    default: Any  # the model's value, REQUIRED, or None for "not set"
    help: str
    default_doc: str | None = None  # for defaults that are computed, not a plain value


@dataclass(frozen=True)
class Group:
    """A mapping of settings. An atomic one is taken whole from the most specific mapping
    that sets it (no key-by-key merge), and there `null` means "empty" rather than "inherit".
    """

    key: str
    help: str
    required: bool = False
    atomic: bool = False
    expected: str = ""


class Table:
    def __init__(self, entries: Iterable[Setting | Group]) -> None:
        self.entries = tuple(entries)
        self.settings = {e.key: e for e in self.entries if isinstance(e, Setting)}
        self.groups = {e.key: e for e in self.entries if isinstance(e, Group)}
        self.children: dict[str, list[str]] = {}
        for entry in self.entries:
            parent, _, name = entry.key.rpartition(".")
            self.children.setdefault(parent, []).append(name)

    def atomic_group(self, key: str) -> str | None:
        parent = key.rpartition(".")[0]
        while parent:
            group = self.groups.get(parent)
            if group is not None and group.atomic:
                return parent
            parent = parent.rpartition(".")[0]
        return None


@dataclass(frozen=True)
class Found:
    value: Any  # INVALID if reported as bad
    line: int
    key: str  # full dotted key as written, such as domains.www1.memory


@dataclass
class Layer:
    """What one mapping sets: the file's top level, `defaults`, or one domain's entry."""

    values: dict[str, Found] = field(default_factory=dict)
    groups: dict[str, Found] = field(default_factory=dict)


@dataclass(frozen=True)
class DomainEntry:
    name: str
    line: int
    layer: Layer


def read_layer(node: MappingNode, prefix: str, table: Table, ctx: Context) -> Layer:
    """Read the settings of `table` from a mapping, reporting every problem on its line."""
    layer = Layer()
    _read_mapping(node, "", prefix, table, ctx, layer)
    _check_required(node, prefix, table, ctx, layer)
    return layer


def _read_mapping(
    node: MappingNode, group: str, prefix: str, table: Table, ctx: Context, layer: Layer
) -> None:
    for knode, vnode in ctx.pairs(node, dotted(prefix, group)):
        rel = dotted(group, knode.value)
        key = dotted(prefix, rel)
        if rel in table.settings:
            _read_setting(vnode, rel, key, table.settings[rel], ctx, layer)
        elif rel in table.groups:
            _read_group(knode, vnode, rel, prefix, table, ctx, layer)
        else:
            ctx.report(knode, key, unknown_key(knode.value, table.children[group]))


def _read_setting(
    node: Node, rel: str, key: str, setting: Setting, ctx: Context, layer: Layer
) -> None:
    # null means "not set here": the value comes from `defaults` or the built-in default
    if is_null(node):
        return
    try:
        value = setting.kind.parse(node, key, ctx)
    except Invalid as error:
        ctx.report(node, key, str(error))
        value = INVALID
    layer.values[rel] = Found(value, line_of(node), key)


def _read_group(
    knode: Node, node: Node, rel: str, prefix: str, table: Table, ctx: Context, layer: Layer
) -> None:
    key = dotted(prefix, rel)
    # a group's own problems (a key missing, two keys that exclude each other) are
    # reported on the line that names the group
    if isinstance(node, MappingNode):
        layer.groups[rel] = Found(None, line_of(knode), key)
        _read_mapping(node, rel, prefix, table, ctx, layer)
    elif is_null(node):
        layer.groups[rel] = Found(None, line_of(knode), key)
    else:
        layer.groups[rel] = Found(INVALID, line_of(knode), key)
        ctx.report(node, key, f"expected {_group_expected(table, rel)}, got {got(node)}")


def _check_required(
    node: MappingNode, prefix: str, table: Table, ctx: Context, layer: Layer
) -> None:
    for entry in table.entries:
        required = entry.default is REQUIRED if isinstance(entry, Setting) else entry.required
        if not required or entry.key in layer.values or entry.key in layer.groups:
            continue
        parent = entry.key.rpartition(".")[0]
        if not parent:
            line = line_of(node)
        elif parent in layer.groups and layer.groups[parent].value is not INVALID:
            line = layer.groups[parent].line
        else:
            continue  # the missing parent is reported instead
        if isinstance(entry, Setting):
            expected = entry.kind.expected
        else:
            expected = _group_expected(table, entry.key)
        ctx.report(line, dotted(prefix, entry.key), f"required, but not set; expected {expected}")


def _group_expected(table: Table, key: str) -> str:
    group = table.groups[key]
    return group.expected or "a mapping with the keys " + ", ".join(table.children[key])


def unknown_key(name: str, valid: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=1)
    suggestion = f"did you mean '{close[0]}'? " if close else ""
    return f"unknown key; {suggestion}expected one of: {', '.join(valid)}"


def resolve(table: Table, key: str, layers: Sequence[Layer]) -> Any:
    """The value of `key` from the first (most specific) layer that sets it, else the default.

    Inside an atomic group the first layer that sets the group decides alone.
    """
    group = table.atomic_group(key)
    for layer in layers:
        if group is not None:
            if group not in layer.groups:
                continue
            found = layer.values.get(key)
            return table.settings[key].default if found is None else found.value
        found = layer.values.get(key)
        if found is not None:
            return found.value
    return table.settings[key].default


# --- domains --------------------------------------------------------------------------

DOMAIN_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
DOMAIN_NAME_RULE = (
    "a domain name usable as a file name and a host name: 1 to 63 lowercase letters, "
    "digits and '-', starting and ending with a letter or digit"
)


class Defaults(Kind):
    type_doc = "mapping"
    expected = "a mapping of domain settings"

    def parse(self, node: Node, key: str, ctx: Context) -> Layer:
        if not isinstance(node, MappingNode):
            raise self.fail(node)
        return read_layer(node, key, DOMAIN, ctx)


class Domains(Kind):
    type_doc = "mapping: name → domain settings"
    expected = "a mapping of domain name to domain settings, with at least one domain"

    def parse(self, node: Node, key: str, ctx: Context) -> tuple[DomainEntry, ...]:
        if not isinstance(node, MappingNode) or not node.value:
            raise self.fail(node)
        entries = []
        # names that differ only in case clash on case-insensitive file systems
        folded: dict[str, ScalarNode] = {}
        for knode, vnode in ctx.pairs(node, key):
            name = knode.value
            if not DOMAIN_NAME.fullmatch(name):
                ctx.report(knode, f"{key}.{name}", f"expected {DOMAIN_NAME_RULE}")
            other = folded.setdefault(name.lower(), knode)
            if other is not knode:
                ctx.report(
                    knode,
                    f"{key}.{name}",
                    f"differs from '{other.value}' (line {line_of(other)}) only in case; "
                    "expected a name unique regardless of case",
                )
            entries.append(DomainEntry(name, line_of(knode), self._entry(vnode, name, key, ctx)))
        return tuple(entries)

    def _entry(self, node: Node, name: str, key: str, ctx: Context) -> Layer:
        if is_null(node):
            return Layer()
        if not isinstance(node, MappingNode):
            ctx.report(
                node,
                f"{key}.{name}",
                f"expected a mapping of domain settings (or nothing, for all defaults), "
                f"got {got(node)}",
            )
            return Layer()
        return read_layer(node, f"{key}.{name}", DOMAIN, ctx)


# --- the tables ------------------------------------------------------------------------

FILE_SYSTEMS = ("ffs", "ext2fs")
BLOCKDEV_BACKENDS = ("auto", "vnd", "loop", "none")
SET_SUFFIXES = (".tgz", ".tar.gz", ".tar.xz")
# pkgsrc builds .tgz by default; .tbz and .txz are its bzip2 and xz variants. Python's
# tarfile reads all three, so the pkg recipe needs nothing more.
PACKAGE_SUFFIXES = (".tgz", ".tbz", ".txz")


@dataclass(frozen=True)
class Cipher:
    default_keylength: int
    keylengths: tuple[int, ...]

    @property
    def allowed(self) -> str:
        lengths = self.keylengths
        if len(lengths) > 4:
            return f"{lengths[0]} to {lengths[-1]} in steps of {lengths[1] - lengths[0]}"
        return or_list(lengths)


# cgd(4)'s ciphers with their key lengths and cgdconfig's default length for each
CIPHERS = {
    "aes-xts": Cipher(256, (256, 512)),
    "aes-cbc": Cipher(128, (128, 192, 256)),
    "3des-cbc": Cipher(192, (192,)),
    "blowfish-cbc": Cipher(128, tuple(range(40, 449, 8))),
    "adiantum": Cipher(256, (256,)),
}
DEFAULT_CIPHER = "aes-xts"
# Ciphers domus can write itself (it encrypts local.img at build time): not adiantum.
LOCAL_CIPHERS = {name: c for name, c in CIPHERS.items() if name != "adiantum"}
# The systems a dom0 runs, as the `dom0` setting names them (platform.system(), lowercased)
DOM0_SYSTEMS = ("netbsd", "linux")
# The bridge a domU's vif joins unless its vif spec says otherwise: NetBSD's vif-bridge
# script adds the vif to the bridge it is named (under `sh -e`, so a missing one fails
# `xl create`) and NetBSD calls bridges bridgeN; Linux dom0s conventionally use xenbr0.
DEFAULT_BRIDGE = {"netbsd": "bridge0", "linux": "xenbr0"}


def this_dom0() -> str | None:
    """The `dom0` value of this host's system; None on a system that is neither."""
    system = platform.system().lower()
    return system if system in DOM0_SYSTEMS else None


def default_vif(dom0: str) -> tuple[str, ...]:
    return (f"bridge={DEFAULT_BRIDGE[dom0]}",)


# Who opens an encrypted local.img at boot: nobody (plain), the dom0 (cgd on the dom0,
# key in the key directory), or the domU (a passphrase typed on its console).
LOCAL_ENCRYPTION = ("none", "dom0", "domu")

# Devices the patched MAKEDEV `init` target makes beyond the standard ones: the domU's
# extra disks, packet filters, tunnels and the devices ntpd, sysmon and vnconfig need.
# fmt: off
MAKEDEV_ADD = (
    "xbd2", "xbd3", "xbd4", "sysmon", "clockctl", "ipl", "pf", "crypto",
    "tun0", "tun1", "tun2", "tun3", "tap", "tap0", "tap1", "tap2", "tap3", "kttcp", "vnd0",
)

# Hardware a Xen PV domU never has, and drivers whose work belongs to the dom0. Shell
# patterns, so that each matches what a release's MAKEDEV has and may match nothing. Kept on
# purpose: cgd (encrypted swap and local.img), vnd, md, bpf, pf/npf/ipl, tun/tap, fss, dk
# (wedges on an xbd), and the other pseudo-devices, which work the same in a domU.
MAKEDEV_REMOVE = (
    # Consoles and serial lines: the domU's console is xencons; there is no wscons screen and
    # no com(4) port, so tty0N/dty0N, the Cyclades/Cyclom cards and IrDA go.
    "wscons*", "tty[0-9]*", "ttyCZ[0-9]*", "ttyCY[0-9]*", "cir[0-9]*", "irframe[0-9]*",
    # Disk, tape and flash controllers: a domU's disks are xbd(4) (so ld goes too).
    "fd[0-9]*", "wt[0-9]*", "wd[0-9]*", "sd[0-9]*", "flash[0-9]*",
    "st[0-9]*", "ch[0-9]*", "cd[0-9]*", "mcd[0-9]*",
    "amr[0-9]*", "iop[0-9]*", "mfi[0-9]*", "mlx[0-9]*", "mly[0-9]*", "dpti[0-9]*",
    "dpt[0-9]*", "twe[0-9]*", "nvme[0-9]*", "ld[0-9]*", "atabus[0-9]*",
    "scsibus[0-9]*", "ses[0-9]*",
    # RAIDframe and ccd: redundancy and concatenation of disks are the dom0's, which hands
    # each domU whole xbd disks built on them.
    "raid[0-9]*", "ccd[0-9]*",
    # altmem is physical memory the pmap cannot map (an i386 PAE feature), absent in a domU.
    "altmem*",
    # Printers, scanners, sound, MIDI, joysticks, buses and graphics: no such hardware.
    "lpa[0-9]*", "lpt[0-9]*", "ss[0-9]*", "uk[0-9]*", "speaker*", "joy[0-9]*",
    "satlink[0-9]*", "audio*", "radio*", "music*", "rmidi[0-9]*", "pad*",
    "bktr*", "agp[0-9]*", "pci[0-9]*", "usbs*", "gpio*", "drm[0-9]*",
    "video*", "dtv*", "hdmicec[0-9]*", "fw[0-9]*", "bthub*",
)
# fmt: on

# Where rc.d/random_seed keeps the entropy seed: NetBSD's /var/db/entropy-file, reached
# through /local. random_seed loads and saves only on a directory `df -G` calls ffs, ext2fs,
# ...; /var is a null mount of /local/var, which df calls null, so the default path is
# refused at every boot and shutdown. The same directory seen through /local is on /local's
# own file system, made writable by rc.d/root before random_seed (after mountcritlocal) runs.
LOCAL_MOUNT = "/local"
ENTROPY_FILE = f"{LOCAL_MOUNT}/var/db/entropy-file"

# The rc.conf variables every domU gets; the domain's name is added as `hostname`.
RC_CONF_BUILTIN = (
    ("rc_configured", "YES"),
    ("critical_filesystems_local", "/local /etc /tmp /var"),
    ("powerd", "YES"),
    ("savecore", "NO"),
    ("sendmail", "NO"),
    ("wscons", "NO"),
    ("random_file", ENTROPY_FILE),
)

DEVICE = Word(r"[A-Za-z0-9_]+", "a MAKEDEV device name (letters, digits and '_')", "device name")
DEVICE_PATTERN = Word(
    r"[A-Za-z0-9_*?\[\]-]+",
    "a MAKEDEV device name or a shell pattern such as 'wd[0-9]*'",
    "device name or pattern",
)
VIF = Word(
    r"[^\"'\n\r]*",
    "an xl vif spec such as 'bridge=bridge0', without quote characters or newlines",
    "xl vif spec",
)

DOMAIN = Table(
    [
        Setting("memory", Memory(), 256, "Memory of the domU; at least 32m, whole MiB"),
        Setting("vcpus", Integer(1, 64), 1, "Number of virtual CPUs"),
        Setting(
            "vif",
            ListOf(VIF, "a list of xl vif specs such as ['bridge=bridge0']"),
            None,
            "Network interfaces, as xl vif specs; the bridge must exist on the dom0",
            default_doc=", ".join(
                f"bridge={bridge} ({dom0} dom0)" for dom0, bridge in DEFAULT_BRIDGE.items()
            ),
        ),
        Setting(
            "rc_conf",
            RcConf(),
            RC_CONF_BUILTIN,
            "rc.conf variables; yes/no become YES/NO; merged by variable",
            default_doc=RcConf().show(RC_CONF_BUILTIN) + " hostname=<name>",
        ),
        Group("local", "local.img, mounted on /local: the domU's own state"),
        Setting("local.size", Size(), 64 * MiB, "Size of local.img"),
        Setting("local.fs", Choice(FILE_SYSTEMS), "ffs", "File system of local.img"),
        Setting(
            "local.encrypt",
            Choice(LOCAL_ENCRYPTION),
            "none",
            "Encrypt local.img with cgd: `dom0` opens it on the dom0 with a key kept in the key "
            "directory; `domu` opens it in the domU with a passphrase typed on its console "
            "and needs `fs: ffs` (cgdconfig tells a wrong passphrase by the FFS superblock)",
        ),
        Setting(
            "local.cipher",
            Choice(LOCAL_CIPHERS),
            DEFAULT_CIPHER,
            "cgd cipher of an encrypted local.img",
        ),
        Setting(
            "local.keylength",
            KeyLength(),
            None,
            "cgd key length in bits of an encrypted local.img, as for swap",
            default_doc="by cipher, as for swap",
        ),
        Group("pkg", "pkg.img, mounted on /usr/pkg"),
        Setting("pkg.size", Size(), 256 * MiB, "Size of pkg.img"),
        Setting("pkg.fs", Choice(FILE_SYSTEMS), "ffs", "File system of pkg.img"),
        Group(
            "pkg.source",
            "What goes into pkg.img: `tree` or `packages`; null or absent is an empty image. "
            "Taken whole from the domain or from defaults, never merged",
            atomic=True,
            expected="a mapping with one of the keys tree, packages (or null for an empty image)",
        ),
        Setting(
            "pkg.source.tree",
            PathKind("directory"),
            None,
            "Directory tree to copy into pkg.img",
        ),
        Setting(
            "pkg.source.packages",
            ListOf(
                PathKind("file", suffixes=PACKAGE_SUFFIXES),
                "a list of at least one pkgsrc binary package file "
                "(use source: null for an empty image)",
                min_items=1,
            ),
            (),
            "pkgsrc binary packages (.tgz, .tbz or .txz) to install into pkg.img",
        ),
        Group("swap", "swap.img, used through cgd with a random key"),
        Setting("swap.size", Size(), 128 * MiB, "Size of swap.img"),
        Setting("swap.cipher", Choice(CIPHERS), DEFAULT_CIPHER, "cgd cipher for swap"),
        Setting(
            "swap.keylength",
            KeyLength(),
            None,
            "cgd key length in bits; allowed: "
            + "; ".join(f"{name} {c.allowed}" for name, c in CIPHERS.items()),
            default_doc="by cipher: "
            + ", ".join(f"{name} {c.default_keylength}" for name, c in CIPHERS.items()),
        ),
    ]
)

SITE = Table(
    [
        Setting(
            "output",
            # the xl config of a domU whose local.img the dom0 opens names paths below it in
            # a disk spec, where no comma can be written
            PathKind(
                "directory",
                must_exist=False,
                no_comma="xl ends a disk spec's script= at one, and block-domus-cgd its local.img",
            ),
            "build",
            "Directory for everything built",
        ),
        Setting(
            "templates",
            PathKind("directory"),
            None,
            "Site template directory, searched before the built-in templates/",
        ),
        Setting(
            "keys",
            PathKind("directory", must_exist=False),
            "keys",
            "Key directory (mode 0700, keys 0600) for encrypted local images; keep it out of "
            "the output directory and back it up: a lost key is a lost local.img",
        ),
        Setting(
            "locks",
            PathKind("directory", must_exist=False),
            None,
            "Lock directory",
            default_doc="<output>/locks",
        ),
        Setting(
            "dom0",
            Choice(DOM0_SYSTEMS),
            None,
            "The system of the dom0 the domUs run on: it picks the default vif bridge and "
            "what `./domus check` asks of the dom0",
            default_doc="this host's system",
        ),
        Group("generations", "Generations of root.img and pkg.img, kept for rollback"),
        Setting(
            "generations.keep",
            Integer(1, 1000),
            3,
            "Generations of each image that garbage collection keeps, newest first; the "
            "active, pinned and running ones are kept as well",
        ),
        Group(
            "blockdev",
            "How images are attached when domus runs as root on the dom0 (to converge a "
            "local.img in place, or to read root.source.image)",
        ),
        Setting(
            "blockdev.backend",
            Choice(BLOCKDEV_BACKENDS),
            "auto",
            "`vnd` (vnconfig, NetBSD), `loop` (losetup, Linux), `auto` (the one of this "
            "system) or `none` (never attach: ext2fs images are converged through debugfs)",
        ),
        Setting(
            "blockdev.units",
            Integer(1, 64),
            4,
            "Units in the pool (vnd0 to vndN-1): at most this many images are attached at "
            "once, across all runs and jobs",
        ),
        Setting(
            "blockdev.wait",
            Integer(0, 86400),
            600,
            "Seconds a job waits for a free unit when all are taken, then fails",
        ),
        Group("root", "The shared read-only root.img", required=True),
        Group(
            "root.source",
            "Where the root file system comes from: exactly one of `tree`, `sets` or `image`",
            required=True,
            expected="a mapping with one of the keys tree, sets, image (and metalog with tree)",
        ),
        Setting(
            "root.source.tree",
            PathKind("directory"),
            None,
            "Directory tree to use as the root file system",
        ),
        Setting(
            "root.source.metalog",
            PathKind("file"),
            None,
            "Only with `tree`: mtree file with owners and modes, like build.sh -U's METALOG",
        ),
        Setting(
            "root.source.sets",
            ListOf(
                FileOrUrl(suffixes=SET_SUFFIXES),
                "a list of at least one NetBSD set tarball",
                min_items=1,
                type_doc="list of files or URLs",
            ),
            (),
            "NetBSD set tarballs (.tgz, .tar.gz or .tar.xz), extracted in order: files, or "
            "http, https or ftp URLs, downloaded once and checked against `sha512`",
        ),
        Setting(
            "root.source.sha512",
            FileOrUrl(),
            None,
            "With set URLs: the release's SHA512 file (a URL or a file) that lists the sets",
            default_doc="SHA512 beside each set's URL",
        ),
        Setting(
            "root.source.image",
            PathKind("file"),
            None,
            "An existing root.img (ffs or ext2fs) to read the tree from: needs root, is "
            "mounted read-only through `blockdev` and never written",
        ),
        Setting(
            "root.kernel",
            FileOrUrl(),
            REQUIRED,
            "domU kernel, such as netbsd-XEN3_DOMU: a file, or a URL checked against the "
            "SHA512 file beside it (a .gz one is decompressed once checked)",
        ),
        Setting("root.size", Size(), REQUIRED, "Size of root.img"),
        Setting("root.fs", Choice(FILE_SYSTEMS), "ffs", "File system of root.img"),
        Group("root.makedev", "How the MAKEDEV `init` target is patched"),
        Setting(
            "root.makedev.add",
            ListOf(DEVICE, "a list of MAKEDEV device names"),
            MAKEDEV_ADD,
            "Devices made at boot beyond the standard ones",
        ),
        Setting(
            "root.makedev.remove",
            ListOf(DEVICE_PATTERN, "a list of MAKEDEV device names or shell patterns"),
            MAKEDEV_REMOVE,
            "Devices not made at boot: hardware a Xen domU never has. Shell patterns may match "
            "nothing; a plain name must be one the init target makes (a typo is an error). "
            "The default leaves out any device listed in `add`",
        ),
        Setting(
            "defaults",
            Defaults(),
            None,
            "Settings every domain starts from: any `domains.<name>.` key below",
        ),
        Setting(
            "domains",
            Domains(),
            REQUIRED,
            "Domain name → settings; an empty entry takes all defaults. "
            "Names: lowercase letters, digits and '-', at most 63",
        ),
    ]
)


# --- reference ------------------------------------------------------------------------

REFERENCE_INTRO = """\
Settings of a site file. Sizes are written like `512k`, `400m`, `2g` (powers of 1024; a
bare number counts bytes, except for `memory`, where it counts MiB). Relative paths start
at the site file's directory. A key set to null, or left out, takes its default. Every
`domains.<name>.` key can also be set under `defaults.`: a domain's own value wins,
mappings merge key by key, lists and `pkg.source` are replaced whole.

"""


def _default_text(entry: Setting | Group, kind: Kind | None) -> str:
    if isinstance(entry, Group):
        return "required" if entry.required else ""
    if entry.default is REQUIRED:
        return "required"
    if entry.default_doc is not None:
        return f"`{entry.default_doc}`"
    if entry.default is None or entry.default == ():
        return "none"
    assert kind is not None
    return f"`{kind.show(entry.default)}`"


def _rows(table: Table, prefix: str) -> list[tuple[str, str, str, str]]:
    rows = []
    for entry in table.entries:
        kind = entry.kind if isinstance(entry, Setting) else None
        type_doc = kind.type_doc if kind is not None else "mapping"
        rows.append((f"`{prefix}{entry.key}`", type_doc, _default_text(entry, kind), entry.help))
    return rows


def reference_markdown() -> str:
    """The settings reference for the README: one markdown table, made from the tables."""
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for row in [*_rows(SITE, ""), *_rows(DOMAIN, "domains.<name>.")]:
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    return REFERENCE_INTRO + "\n".join(lines) + "\n"
