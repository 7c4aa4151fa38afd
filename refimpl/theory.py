"""Theory-level quantities reported beside results (MODEL.md section 7)."""
from __future__ import annotations

import math

__all__ = ["indicators", "GAMMA_INH_NOTE"]

GAMMA_INH_NOTE = ("Gamma_inh is a heuristic indicator of our own derivation "
                  "(MODEL.md section 7), not the paper's formula")


def _task(n, signal_sq, sigma_p, d):
    """SNR, Kou et al.'s indicator and the stage-1 ratio of one task, |mu|^2 given."""
    return {
        "snr": math.sqrt(signal_sq) / (sigma_p * math.sqrt(d)),      # |mu|/(sigma_p sqrt d)
        "kou_indicator": n * signal_sq**2 / (sigma_p**4 * d),          # n|mu|^4/(sigma_p^4 d)
        "stage1_ratio": n * signal_sq / (sigma_p**2 * d),             # n|mu|^2/(sigma_p^2 d)
    }


def indicators(config):
    """Section 7 quantities of a config.

    |mu_k|^2 = |u|^2 + |v_k|^2 (u is orthogonal to v_k; in the split layout the
    same total signal energy). Gamma_inh = |u|^4 / (sigma_{p,down}^2
    (|v_up|^2 + sigma_{p,up}^2 d / N_1)) is labelled heuristic.

    Returns
    -------
    dict with keys ``up``, ``down`` (each: snr, kou_indicator, stage1_ratio),
    ``gamma_inh`` and ``gamma_inh_note``.
    """
    c = config
    out = {}
    for task, v, sigma_p, n in (("up", c.v_up_norm, c.sigma_p_up, c.n_up),
                                ("down", c.v_down_norm, c.sigma_p_down, c.n_down)):
        out[task] = _task(n, c.u_norm**2 + v**2, sigma_p, c.d)
    out["gamma_inh"] = c.u_norm**4 / (c.sigma_p_down**2 * (c.v_up_norm**2 + c.sigma_p_up**2 * c.d / c.n_up))
    out["gamma_inh_note"] = GAMMA_INH_NOTE
    return out
