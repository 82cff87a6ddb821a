"""`./domus deploy --check`: what a deploy would do on each host, changing nothing it runs.

The playbook ansible/check.yml sends each host its new site, with the domus and the inputs
it names, to <output>/deploy/check/ there (a file the host has already is copied there from
its own instead of sent), and runs `./domus status` of that site there: compared with what
the host's images were built from (`--moved`), it says what the deploy's build would
build, converge, or make a new generation of. Here: what rsync would send, the generations
the host lacks, the domUs that would move and those that would be retired. The root and
pkg generations the hosts need are built here, as a deploy would, so that their ids can be
compared.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from tasks.deploy.cause import cause
from tasks.deploy.moves import Move, moves
from tasks.deploy.retire import retiring, unreached, would_retire
from tasks.deploy.run import begin, keep_others, problem_of, run_playbook
from tasks.deploy.stage import NEVER_DEPLOYED, Prepared, deploy_dir, prepare
from tasks.run.errors import EXIT_FAILED, EXIT_OK
from tasks.run.locks import hold_run_lock
from tasks.site import Site
from tasks.status.orphaned import ACTION as RETIRE


def check(site: Site, names: Sequence[str]) -> int:
    hosts = begin(site, names)
    deploy_dir(site).mkdir(parents=True, exist_ok=True)
    hold_run_lock(site.layout.locks)
    moving = moves(site, [host.name for host in hosts])
    prepared = [prepare(site, host) for host in hosts]
    keep_others(site, prepared)
    ready = [each for each in prepared if each.error is None and each.domus]
    ran = run_playbook(site, ready, "check.yml") if ready else None
    results = ran.results if ran is not None else {}
    log = ran.log if ran is not None else None
    failed = []
    for each in prepared:
        name = each.host.name
        result = results.get(name, {})
        problem = problem_of(each, result, last="Status there")
        if problem is not None:
            failed.append(name)
            print(f"{name}: cannot tell: {problem}")
            if log is not None and each.error is None:
                print(f"  (see {log})")
            continue
        print(f"{name}:")
        lines, told = would_do(site, each, result, [m for m in moving if name in (m.old, m.new)])
        for line in lines + ([f"(see {log})"] if not told else []):
            print(f"  {line}")
        if not told:
            failed.append(name)
    for name, domus in unreached(site).items():
        print(f"{name} (no longer in hosts): {', '.join(domus)} stay there as they are")
    if failed:
        print(f"domus: could not check {', '.join(failed)}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def would_do(
    site: Site, each: Prepared, result: dict, moving: list[Move]
) -> tuple[list[str], bool]:
    """What a deploy would do on the host, a line each, and whether `status` there could
    tell what its build would do."""
    name = each.host.name
    if not each.domus:
        return ["no domUs", *would_retire(site, name)], True
    output = result["output"]
    lines = []
    files = result.get("files", 0)
    lines.append(
        f"send {files} file{'' if files == 1 else 's'} of domus and the inputs"
        if files
        else "domus and the inputs there are current"
    )
    there = set(output.get("Generations there", "").splitlines())
    missing = [
        g["final"].rsplit("/", 2)[-2] + " " + g["final"].rsplit("/", 1)[-1]
        for g in each.role["generations"]
        if g["final"] not in there
    ]
    lines.append(f"send generation {', '.join(missing)}" if missing else "generations: all there")
    if output.get("Site there", "") != each.role["site"].rstrip("\n"):
        lines.append("write its new site file")
    for move in moving:
        if move.new == name:
            lines.append(f"take {move.name} from {move.old} (refused if it runs there)")
        else:
            lines.append(f"hand {move.name} over to {move.new}")
    lines.extend(would_retire(site, name))
    # the domUs the lines above speak for: status there sees them as no longer in its site
    spoken = {d.name for d in site.domus if d.host != name} | set(retiring(site).get(name, []))
    built, told = status_lines(result, spoken)
    return lines + built, told


def status_lines(result: dict, spoken: set[str]) -> tuple[list[str], bool]:
    """What `./domus status --json` of the new site there says the build would do, an item
    a line (but the retirements of the domUs in `spoken`), and whether it could say."""
    text = result["output"].get("Status there", "")
    if result["rc"].get("Status there") != 0:
        error = result["stderr"].get("Status there") or text
        if NEVER_DEPLOYED in error:
            return ["never deployed: everything would be sent and built there"], True
        return [f"status there failed: {cause(error)}"], False
    try:
        items = json.loads(text)["items"]
    except (ValueError, KeyError, TypeError):
        return ["status there: not the JSON expected"], False
    pending = [
        item
        for item in items
        if item.get("action") != "up to date"
        and not (item.get("action") == RETIRE and item.get("domain") in spoken)
    ]
    if not pending:
        return ["nothing to build or converge there"], True
    return [
        f"{item.get('domain') or '-'} {item.get('image')}: {item.get('action')}"
        + (f" ({'; '.join(map(str, item['why']))})" if item.get("why") else "")
        for item in pending
    ], True
