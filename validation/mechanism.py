"""Claim `mechanism` (refimpl/claims/mechanism.py):

python validation/mechanism.py [--quick] [--jobs N] [--out DIR]
"""

import sys

from refimpl.cli.validate import claim_main

if __name__ == "__main__":
    sys.exit(claim_main("mechanism"))
