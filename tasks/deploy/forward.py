"""`python -m tasks.deploy.forward config=SITE SLOT=GENERATION...`: run on a dom0 by a
deploy, after its build: each slot (root, pkg.NAME) gets the generation the deploy brought,
where a rollback or an activation there left another one active. A pinned slot keeps its
generation, as a build leaves it (`./domus unpin` there, then deploy).

A build there activates a generation only when its inputs change, so a rollback holds
against it; a deploy makes the host what the site says, and rolls it forward.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from tasks.generations.slots import from_key, stable_links
from tasks.generations.store import Store
from tasks.run.errors import EXIT_OK, EXIT_USAGE, DomusError, print_error
from tasks.site import load_site


def forward(config: Path, wanted: dict[str, str]) -> list[str]:
    """What changed, a line a slot."""
    site = load_site(config)
    store = Store(site.layout)
    said = []
    for key, generation in sorted(wanted.items()):
        slot = from_key(key)
        if slot is None or not store.exists(slot.pool, generation):
            continue
        before = store.active(slot)
        if before == generation:
            continue
        links = stable_links(site.layout, slot, site.root.kernel.name)
        if store.offer(slot, generation, links):
            said.append(f"{slot.name}: generation {generation} active again, was {before}")
        else:
            said.append(f"{slot.name}: pinned to {before}, {generation} left inactive")
    return said


def main(argv: Sequence[str]) -> int:
    config = next((Path(word[7:]) for word in argv if word.startswith("config=")), None)
    pairs = [word.partition("=") for word in argv if not word.startswith("config=")]
    if config is None or any(not sep for _, sep, _ in pairs):
        print(
            "usage: python -m tasks.deploy.forward config=SITE SLOT=GENERATION...", file=sys.stderr
        )
        return EXIT_USAGE
    try:
        for line in forward(config, {key: value for key, _, value in pairs}):
            print(line)
    except DomusError as error:
        print_error(error)
        return error.status
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
