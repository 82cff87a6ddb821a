"""The generic reader of a site file: YAML nodes read by a table of settings.

A value is read from its YAML node, not from a constructed Python object, so every problem
can name the line it is written on. Which settings there are is tasks.site.settings; this
module knows only how a table of them is walked.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

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


class InvalidValue:
    def __repr__(self) -> str:
        return "INVALID"


# Stands in for a value whose problem is already reported, so later checks skip it
# instead of reporting a second, derived problem.
INVALID: Final = InvalidValue()


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


# --- the settings tables ---------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    key: str  # dotted, relative to the table's mapping
    kind: Kind
    default: Any  # the model's value, REQUIRED, or None for "not set"
    help: str
    default_doc: str | None = None  # for defaults that are computed, not a plain value
    # The model field the value fills, dotted like the key: `root.size` is Site.root.size.
    # "" for the key itself; None for a value that fills no field as such (a special case
    # in tasks.site.load reads it).
    dest: str | None = ""

    def __post_init__(self) -> None:
        if self.dest == "":
            object.__setattr__(self, "dest", self.key)


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
