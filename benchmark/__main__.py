"""`python -m wmbench ...` (what torchrun and `accelerate launch -m wmbench` run): the CLI."""

import sys

from .cli import main

sys.exit(main())
