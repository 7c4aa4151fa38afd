"""Claim `mitigation_freezing` (refimpl/claims/mitigation_freezing.py):

python validation/mitigation_freezing.py [--quick] [--jobs N] [--out DIR]
"""

import sys

from refimpl.cli.validate import claim_main

if __name__ == "__main__":
    sys.exit(claim_main("mitigation_freezing"))
