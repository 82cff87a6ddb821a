"""`./domus render NAME TEMPLATE [--context]`: what a template renders for one domU, from
the context the build gives it (each kind's `context`), without building anything."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping

from tasks.inspect.names import find_domu
from tasks.kinds import hotplug, local, root, xen
from tasks.render import Templates
from tasks.run.errors import DomusError, UsageError
from tasks.site import DomU, Site

# The template groups, each rendered from its kind's context.
GROUPS = ("root", "local", "xen")


def every_template(templates: Templates) -> list[str]:
    return [f"{group}/{name}" for group in GROUPS for name in templates.names(group)]


def template_name(templates: Templates, asked: str) -> str:
    """The template `asked` names: its name (`local/etc/fstab`), or the path it writes
    (`etc/fstab`, `/etc/rc.pre-hooks`, `domu.cfg`) where only one template writes it."""
    known = every_template(templates)
    if asked in known or _exists(templates, asked):
        return asked
    path = asked.lstrip("/")
    matches = [name for name in known if name.partition("/")[2] == path]
    if len(matches) == 1:
        return matches[0]
    raise UsageError(
        f"no template {asked!r}" + (f" (it could be {' or '.join(matches)})" if matches else ""),
        hint="the templates are: " + ", ".join(known),
    )


def _exists(templates: Templates, name: str) -> bool:
    """An included template (say an operator's `xen/common.inc`) is no group's member."""
    if name.partition("/")[0] not in GROUPS:
        return False
    try:
        templates.path_of(name)
    except DomusError:
        return False
    return True


def context_for(site: Site, domu: DomU, name: str) -> Mapping[str, object]:
    """What the build renders `name` with for `domu` (root templates see the whole site)."""
    group = name.partition("/")[0]
    if group == "root":
        return root.context(site)
    if group == "local":
        return local.context(site, domu)
    if name == hotplug.TEMPLATE:
        return hotplug.context(site.layout)
    return xen.context(site, domu, site.layout)


def run(site: Site, name: str, asked: str, show_context: bool) -> int:
    domu = find_domu(site, name)
    templates = Templates(site.templates)
    template = template_name(templates, asked)
    context = context_for(site, domu, template)
    if show_context:
        sys.stdout.write(json.dumps(context, indent=2) + "\n")
    else:
        sys.stdout.write(templates.render(template, context))
    sys.stdout.flush()
    return 0
