"""`python -m tasks.nightly ...`: the same as `./domus nightly ...` (see tasks.cli)."""

import sys

from tasks.cli import main

sys.exit(main(["nightly", *sys.argv[1:]]))
