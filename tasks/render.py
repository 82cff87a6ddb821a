"""One Jinja2 environment for every file the tool writes.

The site's template directory is searched before the built-in `templates/`, so an
operator overrides a file by putting one of the same name there. Undefined variables are
errors. The templates a task uses (with their includes) become its file dependencies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path

from tasks.errors import DomusError

BUILTIN = Path(__file__).resolve().parent.parent / "templates"


class Templates:
    def __init__(self, site_dir: Path | None) -> None:
        self.search = [d for d in (site_dir, BUILTIN) if d is not None]

    @property
    def env(self):
        return _environment(tuple(str(d) for d in self.search))

    def names(self, group: str) -> list[str]:
        """Every template below `group/` in any search directory, as a path in the image."""
        found = set()
        for directory in self.search:
            top = directory / group
            if top.is_dir():
                found.update(
                    str(p.relative_to(top)) for p in top.rglob("*")
                    if p.is_file() and not p.name.startswith(".") and not p.name.endswith("~")
                )
        return sorted(found)

    def path_of(self, name: str) -> Path:
        for directory in self.search:
            if (directory / name).is_file():
                return directory / name
        raise DomusError(f"no template {name!r} in {', '.join(map(str, self.search))}")

    def files(self, names: Iterable[str]) -> list[Path]:
        """The files behind `names` and every template they include, import or extend."""
        from jinja2 import meta

        seen: dict[str, Path] = {}
        pending = list(names)
        while pending:
            name = pending.pop()
            if name in seen:
                continue
            seen[name] = path = self.path_of(name)
            parsed = self.env.parse(path.read_text())
            pending.extend(n for n in meta.find_referenced_templates(parsed) if n)
        return sorted(set(seen.values()))

    def render(self, name: str, context: Mapping[str, object]) -> str:
        from jinja2 import TemplateError

        try:
            return self.env.get_template(name).render(context)
        except TemplateError as error:
            where = self.path_of(name)
            line = getattr(error, "lineno", None)
            raise DomusError(
                f"{where}{f':{line}' if line else ''}: {error}",
                hint="variables a template can use are listed in the README (Templates)",
            ) from error


@cache
def _environment(search: tuple[str, ...]):
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    return Environment(
        loader=FileSystemLoader(list(search)),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
