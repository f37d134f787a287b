#!/usr/bin/env python
"""Time metric queries (in-process and `mf query`): scripts/benchmark_metrics.py --help"""

import sys

from retail_xsell.benchmark_metrics import main

if __name__ == "__main__":
    sys.exit(main())
