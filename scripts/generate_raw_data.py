#!/usr/bin/env python
"""Generate the raw retail sources; see ``--help`` and docs/generator.md."""

import sys

from retail_xsell.generator.cli import main

if __name__ == "__main__":
    sys.exit(main())
