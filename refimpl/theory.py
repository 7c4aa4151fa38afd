"""Theory-level quantities reported beside results (docs/model.md §7).

A quantity that is not a finite number for a config (e.g. sigma_p so small
that sigma_p^4 underflows to zero) is ``None``, read as "undefined"; it never
fails a finished run.
"""

from __future__ import annotations

import math

__all__ = ["indicators", "GAMMA_INH_NOTE"]

GAMMA_INH_NOTE = (
    "Gamma_inh is a heuristic indicator of our own derivation "
    "(docs/model.md §7), not the paper's formula"
)


def _finite(compute):
    """``compute()`` as a float, or None when it is not a finite number."""
    try:
        value = float(compute())
    except (ZeroDivisionError, OverflowError):
        return None
    return value if math.isfinite(value) else None


def _task(n, signal_sq, sigma_p, d):
    """SNR, Kou et al.'s indicator and the stage-1 ratio of one task, |mu|^2 given."""
    return {
        "snr": _finite(
            lambda: math.sqrt(signal_sq) / (sigma_p * math.sqrt(d))
        ),  # |mu|/(sigma_p sqrt d)
        "kou_indicator": _finite(
            lambda: n * signal_sq**2 / (sigma_p**4 * d)
        ),  # n|mu|^4/(sigma_p^4 d)
        "stage1_ratio": _finite(lambda: n * signal_sq / (sigma_p**2 * d)),  # n|mu|^2/(sigma_p^2 d)
    }


def indicators(config):
    """The §7 quantities of a config.

    |mu_k|^2 = |u|^2 + |v_k|^2 (u is orthogonal to v_k; in the split layout the
    same total signal energy). Gamma_inh = |u|^4 / (sigma_{p,down}^2
    (|v_up|^2 + sigma_{p,up}^2 d / N_1)) is labelled heuristic; Gamma_scr =
    N_2 |mu_down|^4 / (sigma_{p,down}^4 d) is the downstream task's own
    Kou indicator.

    Parameters
    ----------
    config : Config
        The run's configuration (norms, noise levels, sample sizes, d).

    Returns
    -------
    dict with keys ``up``, ``down`` (each: snr, kou_indicator, stage1_ratio),
    ``gamma_inh``, ``gamma_scr`` and ``gamma_inh_note``; undefined values are None.
    """
    c = config
    out = {}
    for task, v, sigma_p, n in (
        ("up", c.v_up_norm, c.sigma_p_up, c.n_up),
        ("down", c.v_down_norm, c.sigma_p_down, c.n_down),
    ):
        out[task] = _task(n, c.u_norm**2 + v**2, sigma_p, c.d)
    out["gamma_inh"] = _finite(
        lambda: (
            c.u_norm**4 / (c.sigma_p_down**2 * (c.v_up_norm**2 + c.sigma_p_up**2 * c.d / c.n_up))
        )
    )
    out["gamma_scr"] = out["down"]["kou_indicator"]
    out["gamma_inh_note"] = GAMMA_INH_NOTE
    return out
