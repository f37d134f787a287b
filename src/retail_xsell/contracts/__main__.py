"""``python -m retail_xsell.contracts --out DIR``: what make/contracts.mk calls."""

import sys

from retail_xsell.contracts.documents import main_contracts

sys.exit(main_contracts())
