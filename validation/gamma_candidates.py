"""Claim `gamma_candidates` (refimpl/claims/gamma_candidates.py):

python validation/gamma_candidates.py [--quick] [--jobs N] [--out DIR]
"""

import sys

from refimpl.cli.validate import claim_main

if __name__ == "__main__":
    sys.exit(claim_main("gamma_candidates"))
