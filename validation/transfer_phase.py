"""Claim `transfer_phase` (refimpl/claims/transfer_phase.py):

python validation/transfer_phase.py [--quick] [--jobs N] [--out DIR]
"""

import sys

from refimpl.cli.validate import claim_main

if __name__ == "__main__":
    sys.exit(claim_main("transfer_phase"))
