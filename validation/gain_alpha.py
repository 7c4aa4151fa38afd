"""Claim `gain_alpha` (refimpl/claims/gain_alpha.py):

python validation/gain_alpha.py [--quick] [--jobs N] [--out DIR]
"""

import sys

from refimpl.cli.validate import claim_main

if __name__ == "__main__":
    sys.exit(claim_main("gain_alpha"))
