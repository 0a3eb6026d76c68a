"""`python -m medseg ...` runs the command line (also what torchrun starts)."""

from __future__ import annotations

import sys

from medseg_cli.main import main

if __name__ == "__main__":
    sys.exit(main())
