"""`python -m analysis report ...` (see analysis.report)."""

import sys

from analysis.report import main

sys.exit(main())
