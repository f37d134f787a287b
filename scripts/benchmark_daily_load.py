#!/usr/bin/env python
"""Time retail-xsell build --daily against a full build of the same files: --help"""

import sys

from retail_xsell.benchmark_daily import main

if __name__ == "__main__":
    sys.exit(main())
