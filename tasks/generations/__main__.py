"""`python -m tasks.generations COMMAND ...`: the same as `./domus COMMAND ...` (tasks.cli)."""

import sys

from tasks.cli import main

sys.exit(main(sys.argv[1:]))
