"""The site file: read, checked as a whole before any work starts, frozen into the model.

Every problem in the file is reported at once, one line each, naming the file, the line
and the dotted key, so an operator fixes them in one pass.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode

from tasks.cgd.table import CIPHERS
from tasks.run.errors import SiteError
from tasks.site.checks import check_site
from tasks.site.model import DomU, Host, Site, fill
from tasks.site.netbsd import default_vif, this_dom0
from tasks.site.reader import INVALID, Context, Layer, Problem, Table, read_layer, resolve
from tasks.site.settings import DOMAIN, HOST, SITE, DomainEntry, HostEntry
from tasks.sources.urls import local_files

# libyaml composes a 100-domain site several times faster than the pure-Python parser
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ConfigError(SiteError):
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
    hosts: tuple[HostEntry, ...] = _value(layer, "hosts") or ()
    check_site(layer, defaults, entries, ctx, hosts)
    if ctx.problems:
        return None
    return _build_site(absolute, layer, defaults, entries, ctx, hosts)


def _value(layer: Layer, key: str) -> object:
    found = layer.values.get(key)
    return None if found is None or found.value is INVALID else found.value


# --- building the model ----------------------------------------------------------------
# Each setting fills the model field it names (Setting.dest); what follows are the values
# that are more than one setting's value as read.


def _build_site(
    absolute: Path,
    layer: Layer,
    defaults: Layer,
    entries: Sequence[DomainEntry],
    ctx: Context,
    host_entries: Sequence[HostEntry] = (),
) -> Site:
    values = _values(SITE, (layer,))
    values["path"] = absolute
    # a default directory is a relative path: it starts at the site file, like a written one
    output = values["output"] = _from_site_file(values["output"], ctx)
    values["keys"] = _from_site_file(values["keys"], ctx)
    values["locks"] = values["locks"] or output / "locks"
    sets, kernel, fetched = local_files(
        values["root.source.sets"],
        resolve(SITE, "root.source.sha512", (layer,)),
        values["root.kernel"],
        output / "cache" / "downloads",
    )
    values.update({"root.source.sets": sets, "root.kernel": kernel, "root.downloads": fetched})
    if "root.makedev.remove" not in layer.values:
        # the default remove list gives way to the devices the operator adds
        add = values["root.makedev_add"]
        values["root.makedev_remove"] = tuple(
            device for device in values["root.makedev_remove"] if device not in add
        )
    dom0 = values["dom0"] = values["dom0"] or this_dom0()
    assert isinstance(dom0, str)  # checks.py reported a host that is neither
    hosts = values["hosts"] = tuple(_build_host(entry) for entry in host_entries)
    # a domU's default bridge is the one of the dom0 it runs on
    dom0_of = {host.name: host.dom0 for host in hosts}
    values["domus"] = tuple(
        _build_domu(entry, defaults, dom0_of.get(_host_of(entry, defaults), dom0))
        for entry in entries
    )
    return fill(Site, values)


def _host_of(entry: DomainEntry, defaults: Layer) -> str | None:
    return resolve(DOMAIN, "host", (entry.layer, defaults))


def _build_host(entry: HostEntry) -> Host:
    values = _values(HOST, (entry.layer,))
    values["name"] = entry.name
    return fill(Host, values)


def _build_domu(entry: DomainEntry, defaults: Layer, dom0: str) -> DomU:
    values = _values(DOMAIN, (entry.layer, defaults))
    values["name"] = entry.name
    if values["vif"] is None:  # an empty list is no network, not the default
        values["vif"] = default_vif(dom0)
    values["rc_conf"] = _rc_conf(entry, defaults)
    for group in ("local", "swap"):
        # unset, a key length is the cgdconfig default of the cipher it is used with
        cipher = values[f"{group}.cipher"]
        values[f"{group}.keylength"] = (
            values[f"{group}.keylength"] or CIPHERS[cipher].default_keylength
        )
    return fill(DomU, values)


def _values(table: Table, layers: Sequence[Layer]) -> dict[str, Any]:
    """Each model field a setting of `table` fills, with its value from `layers`."""
    return {
        setting.dest: resolve(table, setting.key, layers)
        for setting in table.settings.values()
        if setting.dest is not None
    }


def _from_site_file(path: Path | str, ctx: Context) -> Path:
    return path if isinstance(path, Path) else ctx.path(path)


def _rc_conf(entry: DomainEntry, defaults: Layer) -> tuple[tuple[str, str], ...]:
    # a variable set again keeps its first place, so the built-ins always lead
    variables = dict(DOMAIN.settings["rc_conf"].default)
    variables["hostname"] = entry.name
    for layer in (defaults, entry.layer):
        found = layer.values.get("rc_conf")
        if found is not None:
            variables.update(found.value)
    return tuple(variables.items())
