"""Claim `crosscheck` (refimpl/claims/crosscheck.py):

python validation/crosscheck.py [--quick] [--jobs N] [--out DIR]
"""

import sys

from refimpl.cli.validate import claim_main

if __name__ == "__main__":
    sys.exit(claim_main("crosscheck"))
