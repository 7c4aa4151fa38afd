"""What the framework clients share (:mod:`.torch_client`, :mod:`.jax_client`):
training every stage of a refimpl trajectory file from its inputs and
writing the run in format 1, and the clients' command line."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from ..errors import RefimplError
from ..trajectory import COEFFICIENT_KEYS, STAGES, load, save
from .coefficients import recover_coefficients
from .compare import INPUT_KEYS

__all__ = ["client_arrays", "main"]


def client_arrays(
    ref_path,
    trainer,
    dtype="float64",
    coefficients=False,
    stages=None,
    package="refimpl.crosscheck",
    versions=None,
):
    """Train the stages of a refimpl trajectory file with a client.

    Parameters
    ----------
    ref_path : str or PathLike
        A trajectory file (its inputs are used).
    trainer : callable
        ``trainer(W0, X, y, eta, weight_decay, trainable, steps, snapshots,
        dtype) -> (W (K, 2, m, d), loss (steps + 1,))``.
    dtype : {"float64", "float32"}
    coefficients : bool
        Also store coefficients recovered by projection.
    stages : list of str, optional
    package : str
        Recorded in the provenance.
    versions : dict, optional
        Framework versions, recorded in the provenance.

    Returns
    -------
    dict of str to ndarray
        A format-1 trajectory: the file's inputs (patch roles included), the
        client's W and loss, and coefficients by projection when asked.
    """
    ref = load(ref_path, require_coefficients=False)
    prov = {"package": package, "dtype": dtype, "reference": str(ref_path), **(versions or {})}
    out = {
        "format_version": ref["format_version"],
        "config_json": ref["config_json"],
        "provenance_json": np.str_(json.dumps(prov)),
    }
    stages = list(stages or ref.stages)
    for key in ("down/inherited", "down/inherited_from"):  # the transfer's layout
        if key in ref.arrays and "down" in stages:
            out[key] = ref[key]
    for s in stages:
        v = ref.stage(s)
        for key in INPUT_KEYS + ("steps", "patch_role"):
            if key in v:
                out[f"{s}/{key}"] = getattr(v, key)
        W, loss = trainer(
            v.W0, v.X, v.y, float(v.eta), float(v.weight_decay), v.trainable, v.T, v.steps, dtype
        )
        out[f"{s}/W"], out[f"{s}/loss"] = W, loss
        if coefficients:
            coef = recover_coefficients(
                W,
                v.W0,
                v.steps,
                v.trainable,
                float(v.eta),
                float(v.weight_decay),
                v.signals,
                v.xi,
                v.y,
            )
            out.update(
                {f"{s}/{key}": value for key, value in zip(COEFFICIENT_KEYS, coef, strict=True)}
            )
    return out


def main(argv, name, arrays):
    """Command line of a client: train REF.npz's inputs and write OUT.npz
    (exit 2 with one line for unusable input or a missing framework)."""
    p = argparse.ArgumentParser(
        prog=name,
        description=(
            "Train the stages of a refimpl trajectory file with the framework client and write "
            "its run as a trajectory file (format 1)."
        ),
    )
    p.add_argument("reference", metavar="REF.npz", help="a refimpl trajectory file (its inputs)")
    p.add_argument("out", metavar="OUT.npz")
    p.add_argument("--float32", action="store_true", help="train in float32")
    p.add_argument(
        "--coefficients",
        action="store_true",
        help="also store coefficients recovered by projection",
    )
    p.add_argument("--stage", action="append", choices=STAGES)
    args = p.parse_args(argv)
    try:
        result = arrays(
            args.reference, "float32" if args.float32 else "float64", args.coefficients, args.stage
        )
        save(args.out, result)
    except (RefimplError, ValueError) as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0
