"""Running `./domus` commands beyond build (generations, nightly) on a test site."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.sites import REPO, Run, Site


def domus(site: Site, *args: str, env: dict[str, str] | None = None) -> Run:
    """`./domus generations|activate|rollback|pin|unpin|gc ...` on `site`."""
    return _python(["-m", "tasks.generations", *args, f"config={site.path}"], env)


def nightly(site: Site, env: dict[str, str] | None = None) -> Run:
    return _python(["-m", "tasks.nightly", f"config={site.path}"], env)


def _python(args: list[str], env: dict[str, str] | None) -> Run:
    done = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )
    return Run(done.returncode, done.stdout, done.stderr)


def generations(site: Site, pool: str) -> set[str]:
    top = site.image("generations", pool)
    return {p.name for p in top.iterdir() if not p.name.startswith(".")} if top.exists() else set()


def active(site: Site, key: str = "root") -> str:
    return os.path.basename(os.readlink(site.image("generations", "active", key)))


def slot_state(site: Site, key: str = "root") -> dict:
    return json.loads(site.image("generations", "slots", f"{key}.json").read_text())


def change_root_template(site: Site, text: str) -> None:
    """A site copy of rc.pre-hooks with `text` appended: a new root generation."""
    templates = site.directory / "templates" / "root" / "etc"
    templates.mkdir(parents=True, exist_ok=True)
    builtin = (REPO / "templates" / "root" / "etc" / "rc.pre-hooks").read_text()
    (templates / "rc.pre-hooks").write_text(builtin + text)
    if site.data.get("templates") != "templates":
        site.data["templates"] = "templates"
        site.save()


def fake_xl(directory: Path, domains: list[dict], uptimes: dict[str, int]) -> dict[str, str]:
    """An `xl` that lists `domains` (as `xl list -l` JSON) with these uptimes in seconds;
    returns the environment that puts it first on PATH."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "list.json").write_text(json.dumps(domains))
    lines = [f"{'Name':<33} {'ID':>4} Uptime"]
    for index, (name, seconds) in enumerate(uptimes.items(), start=1):
        hours, rest = divmod(seconds, 3600)
        lines.append(f"{name:<33} {index:>4} {hours:2d}:{rest // 60:02d}:{rest % 60:02d}")
    (directory / "uptime.txt").write_text("\n".join(lines) + "\n")
    script = directory / "xl"
    script.write_text(f"""#!/bin/sh
case "$1" in
list) cat '{directory}/list.json' ;;
uptime) cat '{directory}/uptime.txt' ;;
*) echo "xl: unexpected $*" >&2; exit 1 ;;
esac
""")
    script.chmod(0o755)
    return {"PATH": f"{directory}:{os.environ['PATH']}"}


def xl_domain(name: str, *disks: Path | str) -> dict:
    return {
        "domid": 1,
        "config": {
            "c_info": {"name": name},
            "disks": [{"pdev_path": str(d), "vdev": "xvda"} for d in disks],
        },
    }
