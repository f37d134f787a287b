#!/usr/bin/env python
"""Time the full dbt build and the lean reference pipeline on generated data: --help"""

import sys

from retail_xsell.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
