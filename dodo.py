"""domus: doit builds the site described in config/site.yaml (or `doit config=PATH`).

Tasks: fetch:NAME (sets and kernel given by URL), root, then per domU local:NAME,
pkg:NAME, swap:NAME and xen:NAME; one kind of image each, in tasks/kinds/.
"""

from tasks.kinds import every, generator_for
from tasks.run.build import build_for_dodo

_build = build_for_dodo()

# doit collects the task_* functions of this module: task_fetch, task_root, ...
for _kind in every():
    globals()[f"task_{_kind.NAME}"] = generator_for(_kind, _build)

# doit orders generators by the line that defines them, the same for all of these: without
# default_tasks it would run them by name, `local` before `root`
DOIT_CONFIG = {**_build.doit_config(), "default_tasks": [kind.NAME for kind in every()]}
