"""`python -m analysis report ...` (see analysis.cli)."""

import sys

from analysis.cli import main

sys.exit(main())
