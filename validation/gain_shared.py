"""Claim `gain_shared` (refimpl/claims/gain_shared.py):

python validation/gain_shared.py [--quick] [--jobs N] [--out DIR]
"""

import sys

from refimpl.cli.validate import claim_main

if __name__ == "__main__":
    sys.exit(claim_main("gain_shared"))
