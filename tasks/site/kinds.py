"""How one setting's value is written in YAML: each kind reads it and shows its default."""

from __future__ import annotations

import re
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from yaml.nodes import MappingNode, Node, SequenceNode

from tasks.site.reader import INVALID, Context, Invalid, InvalidValue, Kind, got, or_list
from tasks.site.sizes import EXPECTED as SIZE_EXPECTED
from tasks.site.sizes import SIZE_PATTERN, UNITS, MiB, format_size, parse_size
from tasks.sources.urls import Url, looks_like_url, parse_url


class Size(Kind):
    type_doc = "size"
    expected = SIZE_EXPECTED

    def __init__(self, low: int | None = None, high: int | None = None) -> None:
        self.low, self.high = low, high
        if low is not None and high is not None:
            self.type_doc = f"size {format_size(low)}..{format_size(high)}"

    def parse(self, node: Node, key: str, ctx: Context) -> int:
        value = ctx.scalar(node, self.expected)
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise self.fail(node)
        try:
            size = parse_size(value)
        except ValueError as error:
            raise Invalid(str(error)) from None
        if (self.low is not None and size < self.low) or (
            self.high is not None and size > self.high
        ):
            raise Invalid(
                f"expected a size from {format_size(self.low or 0)} to "
                f"{format_size(self.high or size)}, got {value!r}"
            )
        return size

    def show(self, value: int) -> str:
        return format_size(value)


class Memory(Kind):
    """Domain memory in MiB; a bare number counts MiB, as in xl's `memory = 256`."""

    type_doc = "size (bare number: MiB)"
    expected = "a size such as 256m or 1g"
    minimum = 32
    # Xen's SUPPORT.md: a 64-bit PV guest (the domUs' `type = "pv"`) is security-supported
    # up to 2047 GiB of RAM ("Limits/Guest", Virtual RAM)
    maximum = 2047 * 1024

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
        if mib > self.maximum:
            raise Invalid(
                f"expected at most {self.maximum // 1024}g, the most Xen supports for a PV "
                f"domU, got {got(node)}"
            )
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


class Boolean(Kind):
    type_doc = "`true` | `false`"
    expected = "true or false"

    def parse(self, node: Node, key: str, ctx: Context) -> bool:
        value = ctx.scalar(node, self.expected)
        if not isinstance(value, bool):
            raise self.fail(node)
        return value

    def show(self, value: bool) -> str:
        return "true" if value else "false"


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

    def parse(self, node: Node, key: str, ctx: Context) -> tuple[Any, ...] | InvalidValue:
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

    def parse(self, node: Node, key: str, ctx: Context) -> dict[str, str] | InvalidValue:
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
