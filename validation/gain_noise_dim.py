"""Claim `gain_noise_dim` (refimpl/claims/gain_noise_dim.py):

python validation/gain_noise_dim.py [--quick] [--jobs N] [--out DIR]
"""

import sys

from refimpl.cli.validate import claim_main

if __name__ == "__main__":
    sys.exit(claim_main("gain_noise_dim"))
