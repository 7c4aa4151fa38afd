"""Claim `negative_transfer` (refimpl/claims/negative_transfer.py):

python validation/negative_transfer.py [--quick] [--jobs N] [--out DIR]
"""

import sys

from refimpl.cli.validate import claim_main

if __name__ == "__main__":
    sys.exit(claim_main("negative_transfer"))
