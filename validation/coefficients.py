"""Claim `coefficients` (refimpl/claims/coefficients.py):

python validation/coefficients.py [--quick] [--jobs N] [--out DIR]
"""

import sys

from refimpl.cli.validate import claim_main

if __name__ == "__main__":
    sys.exit(claim_main("coefficients"))
