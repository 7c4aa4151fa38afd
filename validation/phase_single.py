"""Claim `phase_single` (refimpl/claims/phase_single.py):

python validation/phase_single.py [--quick] [--jobs N] [--out DIR]
"""

import sys

from refimpl.cli.validate import claim_main

if __name__ == "__main__":
    sys.exit(claim_main("phase_single"))
