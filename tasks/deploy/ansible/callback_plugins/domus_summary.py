"""Ansible callback: what happened on each host, as JSON for `./domus deploy`'s summary.

Written to $DOMUS_DEPLOY_RESULTS when the play ends: per host the tasks that changed
something, what rsync sent (bytes and files), the output of the build, the roll forward
and the garbage collection there, and the task that failed or why the host was unreachable.
"""

from __future__ import annotations

import json
import os
import re

from ansible.plugins.callback import CallbackBase

SENT = re.compile(r"^Total bytes sent: ([\d,.]+)", re.M)
FILES = re.compile(r"^Number of regular files transferred: ([\d,.]+)", re.M)
KEPT = (
    "Build",
    "Roll forward",
    "Collect garbage",
    "Site there",
    "Generations there",
    "Status there",
)


def _number(text: str) -> int:
    return int(re.sub(r"[,.]", "", text))


def _name(result) -> str:
    """The task's name as the role writes it, without the role's name before it."""
    return result._task.name or result._task.get_name()


def _message(outcome: dict) -> str:
    """What a failed task said: a loop's own msg only says that an item failed (`All
    items completed`), the items' say what."""
    items = [each for each in outcome.get("results") or [] if isinstance(each, dict)]
    failed_items = [each for each in items if each.get("failed") or each.get("unreachable")]
    lines = []
    for each in failed_items or [outcome]:
        lines += [each.get("msg") or "", each.get("stderr") or "", each.get("stdout") or ""]
    return "\n".join(line.strip() for line in lines if line and line.strip())[-20000:]


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "domus_summary"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self.hosts: dict[str, dict[str, object]] = {}

    def _host(self, result) -> dict:
        return self.hosts.setdefault(
            result._host.get_name(),
            {
                "changed": [],
                "sent": 0,
                "files": 0,
                "shipped": [],
                "output": {},
                "rc": {},
                "stderr": {},
                "failed": None,
                "unreachable": None,
            },
        )

    def _count(self, host: dict, task: str, result: dict) -> None:
        for each in result.get("results") or [result]:
            if not isinstance(each, dict):
                continue
            stdout = each.get("stdout") or ""
            # a shell line of several rsyncs: each says what it sent
            sent = sum(map(_number, SENT.findall(stdout)))
            files = sum(map(_number, FILES.findall(stdout)))
            host["sent"] += sent
            host["files"] += files
            if files:
                host["shipped"].append(task)

    def v2_runner_on_ok(self, result) -> None:
        host = self._host(result)
        task = _name(result)
        self._count(host, task, result._result)
        if result._result.get("changed"):
            host["changed"].append(task)
        if task in KEPT:
            host["output"][task] = result._result.get("stdout", "")
            host["rc"][task] = result._result.get("rc")
            host["stderr"][task] = result._result.get("stderr", "")

    def v2_runner_on_failed(self, result, ignore_errors: bool = False) -> None:
        if ignore_errors:
            return
        # a refusal (the fail module) says all there is to say; another task's failure is
        # named with the task. The whole output is kept: the summary looks in it for the
        # line that says why (tasks/deploy/cause.py), seldom the last
        deliberate = result._task.action in ("fail", "ansible.builtin.fail")
        task = "" if deliberate else _name(result)
        self._host(result)["failed"] = {"task": task, "message": _message(result._result)}

    def v2_runner_on_unreachable(self, result) -> None:
        self._host(result)["unreachable"] = _message(result._result) or "unreachable"

    def v2_playbook_on_stats(self, stats) -> None:
        path = os.environ.get("DOMUS_DEPLOY_RESULTS")
        if path:
            with open(path, "w") as out:
                json.dump(self.hosts, out, indent=1, sort_keys=True)
