"""`python -m tasks.cgd ...`: the same as `./domus cgd ...` (see tasks.cli)."""

import sys

from tasks.cli import main

sys.exit(main(["cgd", *sys.argv[1:]]))
