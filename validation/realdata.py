"""realdata: partial parameter transfer on real images, transfer vs scratch.

The experiments of :mod:`refimpl.realdata` (issue 5): scikit-learn's bundled
8 x 8 digits (offline), cut into 4 x 4 blocks (P = 4 patches, d = 16), fed to
the same two-layer ReLU CNN and the same GD code as the synthetic scripts.
Downstream task 3, 2 (+1) vs 8, 7 (-1); upstream tasks sharing nothing
(0, 5 vs 6, 9), half (3, 5 vs 8, 9: the default) or everything (3, 2 vs 8, 7)
with it. Downstream test accuracy of transfer and scratch against alpha (each
split), N_2, N_1 and upstream label noise, 20 seeds per point (3 with
``--quick``). Each claim is tested on all seeds: Spearman's rho between the
swept value and the per-seed paired gain plus a paired t-test between the
extreme values (both two-sided p < 0.05 in the predicted direction), or a
paired t-test of transfer vs scratch at one point. The overall verdict is
PASS when every paper claim holds.
"""
import sys

from refimpl import realdata

NAME = "realdata"
CLAIM = realdata.CLAIM


def run(out, quick=False, jobs=1):
    """Run the full (or quick) plan on the digits and write ``out/realdata/``
    (results.json, points.csv, runs.csv, README.md, figures); returns the
    protocol's result dict."""
    return realdata.run_validation(out, quick=quick, jobs=jobs)


if __name__ == "__main__":
    from refimpl.validate import script_main

    sys.exit(script_main(sys.modules[__name__]))
