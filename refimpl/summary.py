"""A readable summary of one experiment: test errors, coefficient summaries,
universal knowledge, checks of the decomposition and theory indicators."""

from __future__ import annotations

import numpy as np

from .decomposition import (
    invariants,
    own_entries,
    projection_error,
    reconstruction_error,
    universal_knowledge,
)
from .errors import DependentBasisError
from .theory import indicators
from .transfer import STAGES, Experiment, inherited_noise_energy

__all__ = ["summarize", "format_summary"]

_ERROR_NAMES = {"transfer": "down", "scratch": "scratch", "upstream": "up"}


def _stats(a):
    a = np.asarray(a, dtype=float)
    if a.size == 0:
        return {"mean": None, "max": None, "min": None}
    return {"mean": float(a.mean()), "max": float(a.max()), "min": float(a.min())}


def _coefficients(stage):
    """Final coefficients of the trainable filters; rho_bar over the entries
    with y_i = j and rho_under over those with y_i = -j (the others are 0 by
    definition, docs/model.md §4)."""
    trainable = stage.trainable
    own = np.broadcast_to(own_entries(stage.task.y), stage.rho_bar[-1].shape)[trainable]
    return {
        "steps": stage.T,
        "stopped_by_epsilon": bool(stage.stopped),
        "final_loss": float(stage.loss[-1]),
        "gamma": _stats(stage.gamma[-1][trainable]),
        "rho_bar": _stats(stage.rho_bar[-1][trainable][own]),
        "rho_under": _stats(stage.rho_under[-1][trainable][~own]),
    }


def summarize(exp: Experiment) -> dict:
    """Everything the ``run`` command reports, as a JSON-ready dict.

    Keys ``transfer``, ``scratch``, ``upstream`` hold the test errors
    (``clean_error``, ``clean_error_se``, ``noisy_error``, ``noisy_error_se``);
    ``gain`` is scratch minus transfer clean error (same test draws).

    Parameters
    ----------
    exp : Experiment
        A finished run (:func:`refimpl.transfer.run_experiment`).

    Returns
    -------
    dict
        Besides the errors and ``gain``: ``coefficients`` (per stage ``up``,
        ``down``, ``scratch``: steps, final loss and statistics of gamma,
        rho_bar and rho_under at the last step), ``universal_knowledge`` (mean
        K = j<w, u> of inherited and fresh filters at the start and end of the
        transfer stage, at the end of scratch, the inherited noise energy and
        the number of inherited filters per class), ``checks`` (per stage, the
        reconstruction and projection errors and the invariants) and ``theory``
        (:func:`refimpl.theory.indicators`).
    """
    out = {name: exp.test_error(stage) for name, stage in _ERROR_NAMES.items()}
    out["gain"] = out["scratch"]["clean_error"] - out["transfer"]["clean_error"]
    out["coefficients"] = {s: _coefficients(exp.stages[s]) for s in STAGES}
    down, scratch = exp.stages["down"], exp.stages["scratch"]
    inh = exp.inherited_filters
    K0, K1 = universal_knowledge(down.W[0], exp.u), universal_knowledge(down.W[-1], exp.u)
    out["universal_knowledge"] = {
        "transfer_start_inherited": _stats(K0[inh])["mean"],
        "transfer_start_fresh": _stats(K0[~inh])["mean"],
        "transfer_end_inherited": _stats(K1[inh])["mean"],
        "transfer_end_fresh": _stats(K1[~inh])["mean"],
        "scratch_end": _stats(universal_knowledge(scratch.W[-1], exp.u))["mean"],
        "inherited_noise_energy": _stats(inherited_noise_energy(exp)[inh])["mean"],
        "inherited_filters_per_class": int(inh[0].sum()),
    }
    out["checks"] = {
        s: {
            "reconstruction_rel_error": reconstruction_error(exp.stages[s]),
            "projection_rel_error": _projection(exp.stages[s]),
            "invariants": invariants(exp.stages[s]),
        }
        for s in STAGES
    }
    out["theory"] = indicators(exp.config)
    return out


def _projection(stage):
    """projection_error, or None when the basis {signals, xi} is dependent
    (e.g. noise vectors that underflow to zero): then the coefficients
    cannot be recovered from the weights, and the summary says "undefined"
    instead of failing a finished run."""
    try:
        return projection_error(stage)
    except DependentBasisError:
        return None


def _err(e):
    return (
        f"clean {e['clean_error']:.4f} +- {e['clean_error_se']:.4f}   "
        f"noisy {e['noisy_error']:.4f} +- {e['noisy_error_se']:.4f}"
    )


def _e(x):
    return "undefined" if x is None else f"{x:.1e}"


def _g(x):
    return "undefined" if x is None else f"{x:.3g}"


def _num(x):
    return "n/a" if x is None else f"{x:.4g}"


def _gain_word(gain):
    """What the sign of the gain says about transfer."""
    if gain > 0:
        return "transfer helps"
    return "no gain" if gain == 0 else "negative transfer"


def format_summary(s: dict) -> str:
    """The summary as lines of text.

    Parameters
    ----------
    s : dict
        A summary made by :func:`summarize` (its ``config`` key, when present,
        is not shown).

    Returns
    -------
    str
        Test errors and gain, coefficients at the last step, universal knowledge,
        the decomposition checks and the theory indicators, one per line.
    """
    lines = [
        "test error (clean: against the true label; noisy: against the observed one)",
        f"  transfer (down)  {_err(s['transfer'])}",
        f"  scratch          {_err(s['scratch'])}",
        f"  upstream (up)    {_err(s['upstream'])}",
        f"  gain = scratch - transfer (clean): {s['gain']:+.4f}  ({_gain_word(s['gain'])})",
        "",
        "coefficients at the last step (trainable filters; rho_bar over y_i = j, "
        "rho_under over y_i = -j)",
        "  stage     steps  loss        gamma mean/max       rho_bar mean/max     rho_under min",
    ]
    for name, c in s["coefficients"].items():
        lines.append(
            f"  {name:<8} {c['steps']:>6}  {c['final_loss']:<10.3g}  "
            f"{_num(c['gamma']['mean']):>9} {_num(c['gamma']['max']):>9}  "
            f"{_num(c['rho_bar']['mean']):>9} {_num(c['rho_bar']['max']):>9}  "
            f"{_num(c['rho_under']['min']):>9}"
        )
    k = s["universal_knowledge"]
    lines += [
        "",
        "universal knowledge K = j<w, u> (mean over filters)",
        f"  transfer start: inherited {_num(k['transfer_start_inherited'])}, "
        f"fresh {_num(k['transfer_start_fresh'])}",
        f"  transfer end:   inherited {_num(k['transfer_end_inherited'])}, "
        f"fresh {_num(k['transfer_end_fresh'])}",
        f"  scratch end:    {_num(k['scratch_end'])}",
        f"  inherited filters per class {k['inherited_filters_per_class']}, "
        f"inherited noise energy (mean) {_num(k['inherited_noise_energy'])}",
    ]
    lines += ["", "checks of the decomposition (docs/model.md §4)"]
    for name, c in s["checks"].items():
        inv = c["invariants"]
        held = [n for n, v in inv.items() if v["applies"] and v["holds"]]
        broken = [n for n, v in inv.items() if v["applies"] and not v["holds"]]
        lines.append(
            f"  {name:<8} reconstruction {c['reconstruction_rel_error']:.1e}  "
            f"projection {_e(c['projection_rel_error'])}  invariants: "
            f"{len(held)} hold" + (f", BROKEN: {', '.join(broken)}" if broken else "")
        )
    t = s["theory"]
    lines += ["", "theory indicators (docs/model.md §7; undefined: not a finite number)"]
    for task in ("up", "down"):
        q = t[task]
        lines.append(
            f"  {task:<5} SNR {_g(q['snr'])}   n|mu|^4/(sigma_p^4 d) {_g(q['kou_indicator'])}   "
            f"n|mu|^2/(sigma_p^2 d) {_g(q['stage1_ratio'])}"
        )
    lines.append(f"  Gamma_inh {_g(t['gamma_inh'])}  ({t['gamma_inh_note']})")
    return "\n".join(lines)
