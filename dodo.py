"""domus: doit builds the site described in config/site.yaml (or `doit config=PATH`).

Tasks: fetch:NAME (sets and kernel given by URL), root, then per domU local:NAME,
pkg:NAME, swap:NAME and xen:NAME; one kind of image each, in tasks/kinds/.
"""

import sys
from pathlib import Path

from doit import get_var

from tasks.kinds import KINDS, generator_for
from tasks.run import Build, doit_config, load_or_exit
from tasks.site import DEFAULT_SITE

_build = Build(
    load_or_exit(Path(get_var("config", str(DEFAULT_SITE)))),
    {name for name in get_var("reprovision", "").split(",") if name},
)
_build.take_run_lock(sys.argv)

# doit collects the task_* functions of this module: task_fetch, task_root, ...
for _kind in KINDS:
    globals()[f"task_{_kind.NAME}"] = generator_for(_kind, _build)

# doit orders generators by the line that defines them, the same for all of these: without
# default_tasks it would run them by name, `local` before `root`
DOIT_CONFIG = {**doit_config(_build.layout), "default_tasks": [kind.NAME for kind in KINDS]}
