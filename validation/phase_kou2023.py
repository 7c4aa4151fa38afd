"""Kou et al.'s test-error heatmap (ICML 2023, their syntheticrelu.py) in the
theory's exact model: ``python -m refimpl phase --preset kou2023`` (|mu| = 0
to 9.9 step 0.1, d = 100 to 1090 step 10, 10 repetitions, n = 20, m = 10,
100 GD steps of size 0.1, 1000 test draws, sigma_p = 1, p = 0.1), with the
boundary n|mu|^4 = C sigma_p^4 d fitted and drawn.

    python validation/phase_kou2023.py [--jobs N] [--scheduler ADDRESS] [--out DIR] [...]

Any option of ``python -m refimpl phase`` may follow (``--out`` defaults to
out/phase_kou2023)."""

import sys

from refimpl.cli import main

if __name__ == "__main__":
    sys.exit(main(["phase", "--preset", "kou2023", "--out", "out/phase_kou2023", *sys.argv[1:]]))
