"""``python -m hscc_core``: an alias of the product's command line (``hscc-mri``).

Kept because commands in notes and issues are spelt this way. The product layer is
imported only here, at run time, so ``import hscc_core`` never loads it.
"""
from __future__ import annotations

import importlib
import sys

if __name__ == "__main__":
    sys.exit(importlib.import_module("hscc_mri.cli").main())
