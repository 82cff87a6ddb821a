"""`./domus status [NAME...] [--json]`: every image and xl config, up to date or what the
next build would do to it and why; a table on a terminal, JSON for scripts.

It takes no lock and writes nothing, so it answers while a build runs (telling what that
build started from). When the record of the last complete run still holds (tasks.run.noop)
everything is up to date and the site is not even loaded.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from tasks.run import noop
from tasks.run.errors import EXIT_OK, require_known

Row = dict[str, object]  # domain, image, path, action, why, task


def rows_unchanged(record: dict) -> list[Row]:
    return [
        {
            "domain": domain,
            "image": image,
            "path": path,
            "action": "up to date",
            "why": [],
            "task": task,
        }
        for task, domain, image, path in record["items"]
    ]


def rows_judged(config: Path, moved: Mapping[str, str] | None = None) -> tuple[str, list[Row]]:
    """`moved`: files recorded below each key are compared with those below its value."""
    from tasks.render import Templates
    from tasks.run.build import Build
    from tasks.site import load_site
    from tasks.status.items import items
    from tasks.status.judge import after_root, judge, relocated, retiring
    from tasks.status.orphaned import orphan_rows
    from tasks.status.record import Trees, load_records

    site = load_site(config)
    build = Build(site, set(), read_only=True)
    build.templates = Templates(site.templates, build.templates.cache_file, save=False)
    records = load_records(build.layout)
    trees = Trees()
    where = relocated(moved or {})
    verdicts = [
        judge(item, records.get(item.task), site, build.layout, trees, where)
        for item in items(build)
    ]
    after_root(verdicts)
    retiring(verdicts, site, build.templates)
    rows = []
    for verdict in verdicts:
        item = verdict.item
        rows.append(
            {
                "domain": item.domain,
                "image": item.image,
                "path": str(item.path),
                "action": verdict.action,
                "why": verdict.why,
                "task": item.task,
            }
        )
    rows.extend(orphan_rows(build.layout.output, [domu.name for domu in site.domus]))
    return str(site.path), rows


def status(
    config: Path,
    names: list[str],
    as_json: bool,
    out: TextIO = sys.stdout,
    moved: Mapping[str, str] | None = None,
) -> int:
    """`moved`: as rows_judged; the record of the last run holds only where nothing moved."""
    record = None if moved else noop.unchanged(config)
    if record is not None:
        from tasks.status.orphaned import orphan_rows

        site, rows = record["site"], rows_unchanged(record)
        domains = {str(row["domain"]) for row in rows if row["domain"] is not None}
        rows.extend(orphan_rows(Path(record["output"]), domains))
    else:
        site, rows = rows_judged(config, moved)
    if names:
        require_known(
            names,
            {row["domain"] for row in rows},
            "domain",
            site,
        )
        # the shared images (root.img, the hotplug script) are part of every domU
        rows = [row for row in rows if row["domain"] is None or row["domain"] in names]
    rows = by_domain(rows)
    if as_json:
        write_json(site, rows, out)
    else:
        out.write(table(rows))
    return EXIT_OK


def write_json(site: str, rows: list[Row], out: TextIO) -> None:
    # one item a line: readable, and json's C encoder (it has none for indenting)
    out.write(f'{{"site": {json.dumps(site)}, "items": [\n')
    out.write(",\n".join(json.dumps(row) for row in rows))
    out.write("\n]}\n")


def by_domain(rows: list[Row]) -> list[Row]:
    """The shared images first, then each domU's, in the order of the site file."""
    order = {domain: index for index, domain in enumerate(dict.fromkeys(r["domain"] for r in rows))}
    order[None] = -1
    return sorted(rows, key=lambda row: order[row["domain"]])


def table(rows: list[Row]) -> str:
    header = ("DOMAIN", "IMAGE", "ACTION")
    cells = [(str(row["domain"] or "-"), str(row["image"]), str(row["action"])) for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]

    def line(values: tuple[str, ...], why: str) -> str:
        return (
            "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + "  " + why
        ).rstrip() + "\n"

    text = [line(header, "WHY")]
    margin = tuple("" for _ in header)
    for row, values in zip(rows, cells, strict=True):
        why = list(row["why"]) or [""]  # type: ignore[call-overload]
        text.append(line(values, why[0]))
        text.extend(line(margin, more) for more in why[1:])
    counts = Counter(str(row["action"]) for row in rows)
    text.append(", ".join(f"{n} {action}" for action, n in counts.most_common()) + "\n")
    return "".join(text)
