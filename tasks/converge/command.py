"""`./domus converge`: converge the local images of some domUs, or show what would change.

    ./domus converge [--dry-run] NAME... [config=PATH]

With --dry-run the unified diff of every managed file that would change (or, no longer
managed, be removed) goes to stdout, a new size or inode density the image would be given
to stderr, and nothing is written; the exit status is 0 when nothing would change, 1 when something
would (as diff(1)), an error's as for every command (tasks.cli). Without it, the images
are converged even if their recorded inputs did not change (a file the domU's
administrator edited is put back), under the run lock, as `./domus build` would.
"""

from __future__ import annotations

import argparse
import sys

from tasks.converge.local import converge
from tasks.converge.plan import unified_diff
from tasks.kinds.local import context as local_context
from tasks.kinds.local import template_files
from tasks.render import Templates
from tasks.run.build import start_run
from tasks.run.errors import DomusError, require_known
from tasks.run.locks import image_lock
from tasks.site import DomU, Layout, Site
from tasks.sources.inputs import make_record, write_record

EXIT_SAME, EXIT_DIFFERENT = 0, 1


def run(args: argparse.Namespace) -> int:
    site = args.site
    layout = site.layout
    domus = {domu.name: domu for domu in site.domus}
    require_known(args.names, domus, "domain", site.path)
    if not args.dry_run:
        start_run(layout)
    templates = Templates(site.templates, layout.cache / "template-references.json")
    different = False
    for name in args.names:
        domu = domus[name]
        image = layout.local_image(name)
        if not image.exists():
            raise DomusError(
                f"{name} has no local image yet ({image})", hint="`./domus build` makes it"
            )
        with image_lock(layout.locks, image):
            done = converge(
                site, domu, layout, templates, local_context(site, domu), dry_run=args.dry_run
            )
            if not args.dry_run:
                _record(site, domu, layout, templates)
        if args.dry_run:
            sys.stdout.write("".join(unified_diff(change, name) for change in done.changes))
            sys.stdout.flush()
        if not done.changes:
            # a new size alone is no managed file: said by the converge's own note
            what = (
                "local.img's managed files already match"
                if done.shape
                else "local.img already matches"
            )
            print(f"domus: {name}: {what} the site", file=sys.stderr)
        different = different or bool(done.changes) or done.shape is not None
    return EXIT_DIFFERENT if different and args.dry_run else EXIT_SAME


def _record(site: Site, domu: DomU, layout: Layout, templates: Templates) -> None:
    """The image now matches these inputs: record them, so the next build is a no-op."""
    write_record(
        layout.local_image(domu.name),
        make_record(template_files(templates), local_context(site, domu)),
    )
