"""One Jinja2 environment for every file the tool writes.

The site's template directory is searched before the built-in `templates/`, so an
operator overrides a file by putting one of the same name there. Undefined variables are
errors. The templates a task uses (with their includes) become its file dependencies.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from functools import cache, cached_property
from pathlib import Path

from tasks.run.errors import DomusError

BUILTIN = Path(__file__).resolve().parent.parent / "templates"


class Templates:
    def __init__(
        self, site_dir: Path | None, cache_file: Path | None = None, *, save: bool = True
    ) -> None:
        self.search = [d for d in (site_dir, BUILTIN) if d is not None]
        self.cache_file = cache_file
        self.save = save  # False: the cache is read but never written (`./domus status`)

    @property
    def env(self):
        return _environment(tuple(str(d) for d in self.search))

    def names(self, group: str) -> list[str]:
        """Every template below `group/` in any search directory, as a path in the image."""
        found = set()
        for directory in self.search:
            top = directory / group
            if not top.is_dir():
                continue
            for parent, dirs, files in os.walk(top):
                for entry in [*dirs, *files]:
                    contained(directory, Path(parent, entry))
                found.update(
                    str(Path(parent, f).relative_to(top))
                    for f in files
                    if Path(parent, f).is_file() and not f.startswith(".") and not f.endswith("~")
                )
        return sorted(found)

    def path_of(self, name: str) -> Path:
        found = self._find(name)
        if found is None:
            raise DomusError(f"no template {name!r} in {', '.join(map(str, self.search))}")
        return found

    def _find(self, name: str) -> Path | None:
        for directory in self.search:
            if (directory / name).is_file():
                return contained(directory, directory / name)
        return None

    def relative(self, path: Path) -> str:
        """A template file as its search directory sees it, such as root/etc/rc.local: the
        same wherever domus and the site's templates are installed."""
        for directory in self.search:
            if path.is_relative_to(directory):
                return str(path.relative_to(directory))
        return str(path)

    def files(self, names: Iterable[str]) -> list[Path]:
        """The files behind `names` and every template they include, import or extend."""
        known = self._known_references
        before = dict(known)
        seen: dict[str, Path] = {}
        pending = list(names)
        while pending:
            name = pending.pop()
            if name in seen:
                continue
            seen[name] = path = self.path_of(name)
            # an include of a missing template fails rendering, which names the includer
            pending.extend(r for r in self._references(path, known) if self._find(r))
        if known != before:
            self._save_references(known)
        return sorted(set(seen.values()))

    def _references(self, path: Path, known: dict[str, list]) -> list[str]:
        """Templates `path` refers to; remembered by size and mtime, as parsing needs Jinja2."""
        st = path.stat()
        stamp = [st.st_size, st.st_mtime_ns]
        entry = known.get(str(path))
        if entry is not None and entry[0] == stamp:
            return entry[1]
        from jinja2 import TemplateSyntaxError, meta

        try:
            parsed = self.env.parse(path.read_text())
        except TemplateSyntaxError:
            return []  # not remembered: rendering it fails the task, naming its line
        references = [n for n in meta.find_referenced_templates(parsed) if n]
        known[str(path)] = [stamp, references]
        return references

    @cached_property
    def _known_references(self) -> dict[str, list]:
        """The cache file, read once for every group of templates a run asks about."""
        if self.cache_file is None:
            return {}
        try:
            return json.loads(self.cache_file.read_text())
        except (OSError, ValueError):
            return {}

    def _save_references(self, known: dict[str, list]) -> None:
        if self.cache_file is None or not self.save:
            return
        from tasks.images.publish import save_small

        save_small(self.cache_file, json.dumps(known), "the template-reference cache")

    def render(self, name: str, context: Mapping[str, object]) -> str:
        from jinja2 import TemplateError, TemplateNotFound, TemplateSyntaxError
        from jinja2.sandbox import SecurityError

        try:
            return self.env.get_template(name).render(context)
        except TemplateError as error:
            where, line = self._where(error, self.path_of(name))
            message = error.message if isinstance(error, TemplateSyntaxError) else str(error)
            if isinstance(error, TemplateNotFound):
                message = f"includes {error.name!r}: no such template in " + ", ".join(
                    map(str, self.search)
                )
            hint = "variables a template can use are listed in docs/templates.md"
            domu = context.get("name")
            if isinstance(domu, str):  # a domU's template: render shows what it sees
                hint = (
                    f"`./domus render {domu} {self.relative(where)} --context` shows the values "
                    "it can use; docs/templates.md lists them"
                )
            if isinstance(error, SecurityError):
                hint = "templates run sandboxed: no Python internals, files or commands"
            elif isinstance(error, TemplateNotFound):
                hint = f"add {error.name} to the site's templates, or correct the include"
            elif isinstance(error, TemplateSyntaxError):
                hint = "Jinja2's syntax: {{ value }}, {% if ... %}...{% endif %}, {# comment #}"
            raise DomusError(
                f"{where}{f':{line}' if line else ''}: {message}", hint=hint
            ) from error

    def _where(self, error: Exception, template: Path) -> tuple[Path, int | None]:
        """The template file and line an error came from: a syntax error names them; an
        error while rendering is found in the traceback, in the innermost template frame
        (an included template's, or the line of the include that failed)."""
        from jinja2 import TemplateSyntaxError

        if isinstance(error, TemplateSyntaxError) and error.filename:
            return Path(error.filename), error.lineno
        where, line = template, None
        trace = error.__traceback__
        while trace is not None:
            filename = trace.tb_frame.f_code.co_filename
            if any(Path(filename).is_relative_to(d) for d in self.search):
                where, line = Path(filename), trace.tb_lineno
            trace = trace.tb_next
        return where, line


def xl_escape(value: object) -> str:
    """`value` for inside a quoted string of an xl config: xl reads a backslash as the start
    of an escape, and a quote as the string's end."""
    return re.sub(r"([\\'\"])", r"\\\1", str(value))


def contained(directory: Path, path: Path) -> Path:
    """`path`, refused where a symlink leads it out of the template directory `directory`:
    a template directory must not make a host file (say /etc/shadow) part of an image.
    Symlinks that stay inside the directory are followed."""
    if not path.resolve().is_relative_to(directory.resolve()):
        raise DomusError(
            f"{path}: a symlink leads out of the template directory {directory} "
            f"(to {path.resolve()}); refusing to read it",
            hint="copy the file into the template directory, or remove the symlink",
        )
    return path


@cache
def _environment(search: tuple[str, ...]):
    from jinja2 import FileSystemLoader, StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    class ContainedLoader(FileSystemLoader):
        """Templates only from inside the search directories, even through symlinks."""

        def get_source(self, environment, template):
            source, filename, uptodate = super().get_source(environment, template)
            directory = next(d for d in self.searchpath if Path(filename).is_relative_to(d))
            contained(Path(directory), Path(filename))
            return source, filename, uptodate

    # Sandboxed: a template reaches no Python internals, files or processes (docs/templates.md).
    env = SandboxedEnvironment(
        loader=ContainedLoader(list(search)),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["xl"] = xl_escape
    return env
