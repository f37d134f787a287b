#!/usr/bin/env python
"""Time the full dbt build on generated data: python scripts/benchmark_build.py --help"""

import sys

from retail_xsell.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
