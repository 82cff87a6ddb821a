"""The settings reference of docs/site.md, made from the settings tables."""

from __future__ import annotations

from tasks.site.reader import REQUIRED, Group, Kind, Setting, Table
from tasks.site.settings import DOMAIN, HOST, SITE

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
    """The settings reference for docs/site.md: one markdown table, made from the tables."""
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    rows = [*_rows(SITE, ""), *_rows(HOST, "hosts.<name>."), *_rows(DOMAIN, "domains.<name>.")]
    for row in rows:
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    return REFERENCE_INTRO + "\n".join(lines) + "\n"
