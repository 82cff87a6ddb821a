"""`python -m tasks.site`: check a site file and print its model, or print the reference."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from tasks.run.errors import print_error
from tasks.site.load import ConfigError, load_site
from tasks.site.model import plain
from tasks.site.reference import reference_markdown


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tasks.site",
        description="Check a site file and print its model, or print the settings reference.",
    )
    parser.add_argument("site", nargs="?", type=Path, help="site file to check")
    parser.add_argument(
        "--reference", action="store_true", help="print the settings reference (markdown)"
    )
    args = parser.parse_args(argv)
    if args.reference:
        sys.stdout.write(reference_markdown())
        return 0
    if args.site is None:
        parser.error("give a site file, or --reference")
    try:
        site = load_site(args.site)
    except ConfigError as error:
        print_error(error)
        return error.status
    print(json.dumps(plain(site), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
