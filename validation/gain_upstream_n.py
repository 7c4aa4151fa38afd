"""Claim `gain_upstream_n` (refimpl/claims/gain_upstream_n.py):

python validation/gain_upstream_n.py [--quick] [--jobs N] [--out DIR]
"""

import sys

from refimpl.cli.validate import claim_main

if __name__ == "__main__":
    sys.exit(claim_main("gain_upstream_n"))
