"""Example sites in a temporary directory, built by running doit as an operator would."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "config" / "site.yaml"


def example_site() -> dict:
    """The shipped example site, with its relative paths made absolute."""
    site = yaml.safe_load(EXAMPLE.read_text())
    base = EXAMPLE.parent

    def absolute(value):
        return str((base / value).resolve())

    source = site["root"]["source"]
    source["tree"] = absolute(source["tree"])
    source["metalog"] = absolute(source["metalog"])
    site["root"]["kernel"] = absolute(site["root"]["kernel"])
    for entry in [site["defaults"], *site["domains"].values()]:
        packages = ((entry or {}).get("pkg") or {}).get("source") or {}
        if "packages" in packages:
            packages["packages"] = [absolute(p) for p in packages["packages"]]
    site["output"] = "build"
    return site


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def ran(self) -> set[str]:
        """Tasks the build ran ("built NAME" or "FAILED NAME"), failed or not."""
        return set(re.findall(r"^(?:built|FAILED) +(\S+)", self.stdout, re.M))

    @property
    def up_to_date(self) -> int:
        """How many tasks were up to date, from the closing summary line."""
        found = re.findall(r"^\d+ built, (\d+) up to date\b", self.stdout, re.M)
        assert found, self.stdout
        return int(found[-1])


class Site:
    def __init__(self, directory: Path, data: dict | None = None) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.data = data if data is not None else example_site()
        self.data.setdefault("output", "build")
        self.path = directory / "site.yaml"
        self.save()

    @property
    def output(self) -> Path:
        return self.directory / self.data["output"]

    def save(self) -> None:
        self.path.write_text(yaml.safe_dump(self.data, sort_keys=False))

    def doit(self, *args: str) -> Run:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "doit",
                "-f",
                str(REPO / "dodo.py"),
                "-d",
                str(REPO),
                f"config={self.path}",
                *args,
            ],
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        return Run(done.returncode, done.stdout, done.stderr)

    def build(self, *args: str) -> Run:
        run = self.doit(*args)
        assert run.returncode == 0, run.stdout + run.stderr
        return run

    def image(self, *parts: str) -> Path:
        return self.output.joinpath("images", *parts)
