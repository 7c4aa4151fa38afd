"""Claim `failure_mode` (refimpl/claims/failure_mode.py):

python validation/failure_mode.py [--quick] [--jobs N] [--out DIR]
"""

import sys

from refimpl.cli.validate import claim_main

if __name__ == "__main__":
    sys.exit(claim_main("failure_mode"))
