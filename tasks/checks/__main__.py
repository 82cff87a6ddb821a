"""python -m tasks.checks [NAME...] [config=PATH]: see tasks.checks.run."""

import sys

from tasks.checks.run import main

sys.exit(main())
