"""Pre-register the Gamma confirmation from the exploration stage.

The exploration stage is transfer_phase v2 (400 Latin-hypercube cells, run on
two seed streams: ``validation/exploration/transfer_phase-v2/{main,r1}``, 8
seeds each, pooled here to 16 per cell). Before any confirmation run this
script fixes, from those cells alone:

- the free model's ridge (per seed-level row, features standardised), chosen
  by 5-fold cross-validation of the out-of-sample Brier score over cells, and
  the nested-CV Brier score of that whole procedure;
- the data-chosen monomial Gamma_hat: the free model's slopes per log10 unit
  scaled to |u|^4, rounded to halves, with 95% cell-bootstrap intervals;
- for information, every candidate's cell sign AUC on the exploration cells.

It writes ``validation/preregistration/gamma.json``; the confirmation claims
(``refimpl/claims/_gamma.py``) carry its ridge and exponents as constants and
a test checks that they agree with the file.

Run: ``python validation/preregister_gamma.py`` (about a minute).
"""

import csv
import json
import sys
from pathlib import Path

import numpy as np

from refimpl.claims import _gamma_fit as G
from refimpl.claims._gamma import FACTORS

HERE = Path(__file__).resolve().parent
EXPLORATION = HERE / "exploration" / "transfer_phase-v2"
OUT = HERE / "preregistration" / "gamma.json"
RIDGES = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
FOLDS, CV_SEED, BOOT, BOOT_SEED = 5, 20261206, 200, 612


def load():
    """The exploration cells' factors (cells, 9), p_2 and seed-level scores
    (cells, 16: main's 8 seeds, then r1's)."""
    with open(EXPLORATION / "main" / "transfer_phase.csv") as f:
        table = list(csv.DictReader(f))
    factors = np.array([[float(r[k]) for k in FACTORS] for r in table])
    flips = np.array([float(r["flip_down"]) for r in table])
    ys = []
    for stream in ("main", "r1"):
        per = json.loads((EXPLORATION / stream / "transfer_phase.json").read_text())["data"]
        per = per["per_seed"]
        ys.append(G.seed_outcome(G.as_array(per["err_transfer"]), G.as_array(per["err_scratch"])))
    return factors, flips, np.concatenate(ys, axis=1)


def features(factors, flips):
    """The free model's features: log10 of the nine factors and p_2."""
    return np.column_stack([np.log10(factors), flips])


def exponents(X, y, ridge):
    """The free model's slopes per log10 unit scaled to |u|^4 (nine factors)."""
    Z = G.standardise(X, np.ones(len(X), bool))
    sd = X.std(axis=0)
    beta = G.fit(Z, y, ridge)[1:] / np.where(sd > 0, sd, 1.0)
    iu = FACTORS.index("u_norm")
    return 4 * beta[: len(FACTORS)] / beta[iu]


def main():
    factors, flips, y = load()
    X = features(factors, flips)
    ridge, scores = G.choose_ridge(X, y, RIDGES, FOLDS, CV_SEED)
    nested, chosen = G.nested_cv(X, y, RIDGES, FOLDS, CV_SEED)
    e = exponents(X, y, ridge)
    rng = np.random.default_rng(BOOT_SEED)
    reps = np.array(
        [
            exponents(X[i], y[i], ridge)
            for i in (rng.integers(0, len(y), len(y)) for _ in range(BOOT))
        ]
    )
    ci = np.quantile(reps, [0.025, 0.975], axis=0)
    rounded = [round(2 * v) / 2 for v in e]
    q = G.share(y)
    logs = np.log10(factors)
    hat = logs @ np.array(rounded)
    out = {
        "exploration": {
            "cells": len(y),
            "seeds": int(y.shape[1]),
            "files": [
                str((EXPLORATION / s / "transfer_phase.json").relative_to(HERE.parent))
                for s in ("main", "r1")
            ],
            "cells_positive": int(np.sum(q > 0.5)),
            "cells_negative": int(np.sum(q < 0.5)),
            "cells_half": int(np.sum(q == 0.5)),
        },
        "ridge": {
            "grid": list(RIDGES),
            "cv_brier": scores,
            "chosen": ridge,
            "nested_cv_brier": float(np.nanmean(nested)),
            "nested_outer_choices": chosen,
            "folds": FOLDS,
            "seed": CV_SEED,
        },
        "monomial": {
            "factors": list(FACTORS),
            "exponents_raw": [float(v) for v in e],
            "exponents": rounded,
            "ci95": [[float(a), float(b)] for a, b in ci.T],
            "boot": BOOT,
            "seed": BOOT_SEED,
            "exploration_cell_auc": G.cell_auc(hat, q),
        },
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
