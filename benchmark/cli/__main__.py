"""`python -m wmbench.cli`."""

import sys

from . import main

sys.exit(main())
