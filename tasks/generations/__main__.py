"""python -m tasks.generations COMMAND ...: see tasks.generations.cli."""

import sys

from tasks.generations.cli import main

sys.exit(main())
