"""`./domus build`: doit, run in this process on the repository's dodo.py.

The site is loaded, the run lock taken and the reporter made before doit starts, so their
errors are domus's (SiteError 78, LockHeld 75, UsageError 2); doit's own statuses become 0
or 1.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pprint
import re
import sqlite3
import sys
from collections.abc import Sequence
from contextlib import closing
from types import ModuleType

from doit.cmd_base import ModuleTaskLoader, get_loader
from doit.cmd_dumpdb import DumpDB
from doit.cmdparse import CmdParseError
from doit.dependency import DatabaseException
from doit.doit_cmd import DoitMain
from doit.exceptions import InvalidCommand, InvalidDodoFile, InvalidTask

from tasks import REPO
from tasks.run import build as doit_build
from tasks.run.build import Build
from tasks.run.errors import EXIT_FAILED, EXIT_OK, DomusError, UsageError
from tasks.run.reporter import Reporter

DODO = REPO / "dodo.py"


def load_dodo(build: Build) -> ModuleType:
    """A fresh dodo.py module whose tasks come from `build`."""
    doit_build.handed = build
    try:
        spec = importlib.util.spec_from_file_location("dodo", DODO)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        doit_build.handed = None
    return module


def run_doit(build: Build, args: Sequence[str]) -> int:
    """doit's command line `args` (a command, options, tasks) on `build`: 0 done, 1 failed.

    After a run of tasks, what they were built from is recorded for `./domus status`."""
    if build.reporter is None and not build.read_only:
        build.reporter = Reporter(sys.stdout)
    # dumpdb reads no DOIT_CONFIG: it is told the database here
    database = {"dumpdb": {"dep_file": build.doit_config()["dep_file"]}}
    main = _Doit(ModuleTaskLoader(load_dodo(build)), config_filenames=(), extra_config=database)
    result = main.run(list(args))
    # Only a run's result says whether tasks failed. The other commands worked when they
    # returned: clean, forget, ignore, reset-dep return None, and info returns 1 for a task
    # that is not up to date, which `./domus status` answers.
    code = EXIT_OK if result == 0 or main.command not in ("run", "strace") else EXIT_FAILED
    if build.reporter is not None and not build.read_only and main.command == "run":
        from tasks.status.save import record_run

        record_run(build, build.reporter, complete=not args and code == EXIT_OK)
    return code


class _DumpDB(DumpDB):
    """`dumpdb` of our sqlite3 database (doit's own reads dbm files only)."""

    name = "dumpdb"

    def execute(self, opt_values: dict, pos_args: list[str]) -> int:
        path = opt_values["dep_file"]
        if path == ":memory:" or not os.path.exists(path):
            return 0  # nothing built yet
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            rows = db.execute("SELECT task_id, task_data FROM doit ORDER BY task_id")
            for task, data in rows:
                print(f"{task} -> {pprint.pformat(json.loads(data), indent=4, width=100)}")
        return 0


class _Doit(DoitMain):
    """doit's entry point with its errors raised as ours instead of printed as tracebacks."""

    BIN_NAME = "./domus build"
    command = ""  # the doit command run: "run", "list", "forget", ...
    DOIT_CMDS = tuple(_DumpDB if command is DumpDB else command for command in DoitMain.DOIT_CMDS)

    def run(self, all_args: list[str]) -> int:
        commands = self.get_cmds()
        loader = get_loader(self.config, self.task_loader, commands)
        args = self.process_args(["help" if a == "--help" else a for a in all_args])
        named = bool(args) and args[0] in commands
        name = self.command = args.pop(0) if named else "run"
        command = commands.get_plugin(name)(
            task_loader=loader, config=self.config, bin_name=self.BIN_NAME, cmds=commands
        )
        try:
            return command.parse_execute(args)
        except InvalidCommand as error:
            if error.not_found is None:
                raise UsageError(str(error).strip()) from None
            raise UsageError(
                f"no task, target or doit command named {error.not_found!r}",
                hint=f"`{self.BIN_NAME} list` lists the tasks, `{self.BIN_NAME} help` the rest",
            ) from None
        except CmdParseError as error:
            message = (
                str(error).partition(" (parsing options")[0].removeprefix("Error parsing Command: ")
            )
            raise UsageError(message, hint=f"`{self.BIN_NAME} help {name}`") from None
        except (InvalidDodoFile, InvalidTask) as error:
            raise DomusError(f"dodo.py: {error}") from None
        except DatabaseException as error:
            # doit's record of what is up to date: unreadable, or the disk it is on is full
            if "full" in str(error):
                found = re.search(r"in '([^']+)'", str(error))
                raise DomusError(
                    f"{found[1] if found else 'doit.db'}: the disk is full: cannot "
                    "record which tasks are up to date",
                    hint="free space on the disk of the output directory",
                ) from None
            raise DomusError(
                " ".join(str(error).split()),
                hint="remove that file: the next build then rebuilds everything",
            ) from None
