"""`python -m tasks.converge ...`: the same as `./domus converge ...` (see tasks.cli)."""

import sys

from tasks.cli import main

sys.exit(main(["converge", *sys.argv[1:]]))
