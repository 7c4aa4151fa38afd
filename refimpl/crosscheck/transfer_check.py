"""Consistency checks of the transfer between a file's stages, before any replay.

A downstream stage must start from the transfer (docs/model.md §5, §5.2) of
the upstream stage's last weights that the file and its ``config_json``
describe: :func:`transfer_checks` checks ``down/W0`` against ``up/W[-1]``
with the layout §5.2 records (``down/inherited_from``, else found by
matching rows), and gives the named checks ``transfer_sources``,
``transfer_count``, ``fresh_scale`` and ``inherited_mask`` (entry
granularity: the first three). Each is one
:class:`~refimpl.crosscheck.consistency.Check`;
:func:`refimpl.crosscheck.consistency.check_file` runs them after the checks
of the ``down`` stage itself, and the names, the :class:`Check` class and the
precision helpers are those of :mod:`refimpl.crosscheck.consistency`.

Precision. The transfer is checked at the report's rtol in a float64 file
and at :data:`TRANSFER_RTOL32` in a float32 one (its ``up`` stage drifts, by
float32 rounding, from the run whose last weights ``down/W0`` was copied
from when each stage was trained from a reference file's inputs).

Scale. The fresh filters of ``down/W0`` are draws of ``N(0, sigma_0^2 I)``
(docs/model.md §5.2): their root mean square entry over sigma_0 is checked
against the chi distribution's two-sided bounds at tail :data:`FRESH_TAIL`,
and each fresh filter's norm alone against the chi bounds with d degrees of
freedom (tail split over the fresh filters).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import chi2

from ..config import n_inherited
from .compare import DEFAULT_RTOL, EPS32
from .consistency import EPS64, SAME, SHOWN, Check, _eps, _name, _names, _rel

__all__ = ["transfer_checks", "TRANSFER_RTOL32", "FRESH_TAIL"]

TRANSFER_RTOL32 = 1e-3
"""The transfer's tolerance in a float32 file (module docstring)."""
FRESH_TAIL = 1e-6
"""Two-sided tail probability of the chi test of the fresh filters' scale."""


# ---------------------------------------------------------------------------
# the transfer (docs/model.md §5.2)
# ---------------------------------------------------------------------------


@dataclass
class _Transfer:
    """What the transfer checks read from a file."""

    W_up: np.ndarray  # (2, m_1, d): c-less up/W[-1]
    up: object  # the up StageView
    W0: np.ndarray  # (2, m_2, d): down/W0
    mask: np.ndarray  # down/inherited
    declared: np.ndarray | None  # down/inherited_from or None
    config: dict
    c: float
    c_note: str
    tol: float
    copies: np.ndarray  # (2, m_2) int: the same-class upstream filter each copies, -1 none
    other: np.ndarray  # (2, m_2) int: a filter of the other class it copies, -1 none
    trainable: np.ndarray

    @property
    def sources(self):
        """The layout checked: the file's own record, else the copies found."""
        return self.copies if self.declared is None else self.declared

    @property
    def how(self):
        return (
            "from down/inherited_from"
            if self.declared is not None
            else "by matching down/W0 to up/W[-1] (the file has no down/inherited_from)"
        )


def transfer_checks(traj, rtol=DEFAULT_RTOL):
    """The checks of the transfer from ``up`` to ``down`` (docs/model.md §5.2).

    ``down/W0`` is checked against ``up/W[-1]``: the inherited filters (from
    ``down/inherited_from``, else found by matching) are c x their sources
    (c = ``rescale_inherited``), no fresh filter is a copy, the number of
    copies per class is round(alpha m_down), the fresh filters have the scale
    sigma_0 (a chi test) and ``down/inherited`` marks exactly the copies.

    Returns
    -------
    list of Check
        Empty when the file has no ``down`` stage.
    """
    if "down" not in traj.stages:
        return []
    if "up" not in traj.stages:
        return [
            Check(
                "down",
                "transfer_sources",
                skipped=True,
                note="the file has no up stage: the transfer cannot be checked",
            )
        ]
    t = _transfer(traj, rtol)
    if t.mask.ndim == 3:
        return _entry_checks(t)
    return [_sources(t), _count(t), _fresh(t), _mask(t)]


def _config_number(config, key, lo=None, hi=None):
    """config[key] as a float, or a reason it is not usable (str)."""
    value = config.get(key)
    if value is None:
        return f"config_json has no {key}"
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (lo is not None and value < lo) or (hi is not None and value > hi):
        return f"config_json's {key} is {value!r}, not a usable number"
    return float(value)


def _transfer(traj, rtol):
    up, down = traj.stage("up"), traj.stage("down")
    config = traj.config if isinstance(traj.config, dict) else {}
    c = _config_number(config, "rescale_inherited")
    c_note = "" if isinstance(c, float) else f" ({c}: c = 1 assumed)"
    c = c if isinstance(c, float) else 1.0
    f32 = _eps(up, None) == EPS32 or _eps(down, None) == EPS32
    tol = TRANSFER_RTOL32 if f32 else max(rtol, SAME * EPS64)
    W_up, W0 = up.f64("W")[-1], down.f64("W0")
    copies, other = _match(W0, c * W_up, tol)
    declared = traj.arrays.get("down/inherited_from")
    return _Transfer(
        W_up=W_up,
        up=up,
        W0=W0,
        mask=np.asarray(traj["down/inherited"], bool),
        declared=None if declared is None else np.asarray(declared, np.int64),
        config=config,
        c=c,
        c_note=c_note,
        tol=tol,
        copies=copies,
        other=other,
        trainable=np.asarray(down.trainable, bool),
    )


def _match(W0, sources, tol):
    """For each filter of W0 the same-class source it equals (within ``tol``
    relative), and one of the other class; -1 for none."""
    two, m2, d = W0.shape
    copies, other = np.full((2, m2), -1), np.full((2, m2), -1)
    if sources.shape[1] == 0:
        return copies, other
    for j in range(2):
        for r in range(m2):
            gaps = _rel(W0[j, r], sources)  # (2, m_1)
            for k, out in ((j, copies), (1 - j, other)):
                best = int(np.argmin(gaps[k]))
                if gaps[k, best] <= tol:
                    out[j, r] = best
    return copies, other


def _diagnose(t, j, r, src):
    """Why inherited filter (j, r) is not c x up/W[-1] filter (j, src)."""
    w = t.W0[j, r]
    if t.copies[j, r] >= 0:
        return (
            f"{_name(j, r)} copies upstream filter {_name(j, t.copies[j, r])}, "
            f"not its recorded source {_name(j, src)}"
        )
    if t.other[j, r] >= 0:
        return f"{_name(j, r)} copies {_name(1 - j, t.other[j, r])} of the other class"
    up = t.W_up[j, src]
    k = float(w @ up / (up @ up)) if up @ up > 0 else 0.0
    if k != 0 and _rel(w, k * up) <= t.tol:
        if abs(k - 1) <= t.tol:
            return f"{_name(j, r)} is its source without the rescale c = {t.c:g}"
        return (
            f"{_name(j, r)} is {k:.6g} x its source {_name(j, src)}, not c = {t.c:g} x "
            f"(rescale_inherited{t.c_note})"
        )
    W_up = t.up.f64("W")
    for k, step in enumerate(t.up.steps[:-1]):
        if _rel(w, t.c * W_up[k, j, src]) <= t.tol:
            return f"{_name(j, r)} copies its source at step {int(step)}, not the last"
    gap = float(_rel(w, t.c * t.W_up[j, src]))
    return f"{_name(j, r)} differs from c x its source {_name(j, src)} by {gap:.3g} relative"


def _sources(t):
    src, bad = t.sources, []
    for j, r in np.argwhere(src >= 0):
        s = int(src[j, r])
        if t.declared is not None and _rel(t.W0[j, r], t.c * t.W_up[j, s]) > t.tol:
            bad.append(_diagnose(t, j, r, s))
    for j, r in np.argwhere(src < 0):
        if t.copies[j, r] >= 0 or t.other[j, r] >= 0:
            k, s = (j, t.copies[j, r]) if t.copies[j, r] >= 0 else (1 - j, t.other[j, r])
            what = " is recorded fresh (-1) but" if t.declared is not None else ""
            bad.append(
                f"{_name(j, r)}{what} copies upstream {_name(k, s)}"
                + (" of the other class (the class must be kept)" if k != j else "")
            )
    for j in range(2):
        used, counts = np.unique(src[j][src[j] >= 0], return_counts=True)
        bad += [
            f"upstream {_name(j, u)} is copied {n} times"
            for u, n in zip(used, counts, strict=True)
            if n > 1
        ]
    head = f"the sources {t.how}; c = {t.c:g}{t.c_note}, within {t.tol:.3g} relative"
    if not bad:
        return Check(
            "down",
            "transfer_sources",
            note=f"{int((src >= 0).sum())} inherited filters are c x their sources in up/W[-1], "
            f"no fresh filter copies one ({head})",
        )
    more = f" and {len(bad) - SHOWN} more" if len(bad) > SHOWN else ""
    return Check(
        "down", "transfer_sources", ok=False, note=f"{'; '.join(bad[:SHOWN])}{more} ({head})"
    )


def _per_class(counts):
    return f"{int(counts[0])} (class +1), {int(counts[1])} (class -1)"


def _count(t):
    m1, m2 = t.W_up.shape[1], t.W0.shape[1]
    alpha = _config_number(t.config, "alpha", 0.0, 1.0)
    actual = (t.copies >= 0).sum(axis=1)
    if isinstance(alpha, str):
        return Check(
            "down",
            "transfer_count",
            skipped=True,
            note=f"{alpha}; down/W0 holds {_per_class(actual)} copies of up/W[-1]'s filters",
        )
    k = n_inherited(alpha, m2)
    m_cfg = t.config.get("m_down") if t.config.get("m_down") is not None else t.config.get("m")
    width = (
        f"; config_json says m_down = {m_cfg}, down/W0 has {m2} filters per class"
        if m_cfg is not None and m_cfg != m2
        else ""
    )
    rule = f"config alpha = {alpha:g} and m_down = {m2} give round(alpha m_down) = {k} per class"
    bad = []
    if np.any(actual != k):
        bad.append(f"down/W0 holds {_per_class(actual)} copies of up/W[-1]'s filters")
    if t.declared is not None and np.any((t.declared >= 0).sum(axis=1) != k):
        bad.append(f"down/inherited_from records {_per_class((t.declared >= 0).sum(axis=1))}")
    if k > m1:
        bad.append(f"up has only {m1} filters per class")
    if bad or width:
        which = " (all: alpha = 1)" if np.all(actual == m2) and k != m2 else ""
        note = f"{rule}; {'; '.join(bad)}{which}{width}"
        return Check("down", "transfer_count", ok=False, note=note)
    return Check("down", "transfer_count", note=f"{rule}, as down/W0 holds")


def _chi_bounds(count):
    """The ratio sigma_hat / sigma_0 allowed for ``count`` N(0, sigma_0^2)
    entries (two-sided tail FRESH_TAIL)."""
    lo, hi = chi2.ppf(FRESH_TAIL / 2, count), chi2.isf(FRESH_TAIL / 2, count)
    return math.sqrt(lo / count), math.sqrt(hi / count)


def _scale_check(values, sigma0, what):
    """A Check note and verdict for entries ``values`` ~ N(0, sigma_0^2)."""
    count = values.size
    if count == 0:
        return True, f"no {what}"
    ratio = math.sqrt(float(np.sum(values**2)) / count) / sigma0
    lo, hi = _chi_bounds(count)
    note = (
        f"{what}: sigma = {ratio * sigma0:.4g} from {count} entries; config sigma_0 = "
        f"{sigma0:.4g} allows [{lo * sigma0:.4g}, {hi * sigma0:.4g}] (chi distribution with "
        f"{count} degrees of freedom, two-sided tail {FRESH_TAIL:g})"
    )
    return lo <= ratio <= hi, note


def _fresh(t):
    sigma0 = _config_number(t.config, "sigma_0", 0.0)
    if isinstance(sigma0, str) or sigma0 <= 0:
        note = sigma0 if isinstance(sigma0, str) else "config_json's sigma_0 is not positive"
        return Check("down", "fresh_scale", skipped=True, note=note)
    fresh = t.sources < 0
    ok, note = _scale_check(t.W0[fresh], sigma0, "fresh filters")
    d = t.W0.shape[2]
    tail = FRESH_TAIL / max(int(fresh.sum()), 1)
    lo, hi = math.sqrt(chi2.ppf(tail / 2, d) / d), math.sqrt(chi2.isf(tail / 2, d) / d)
    each = np.linalg.norm(t.W0, axis=-1) / (sigma0 * math.sqrt(d))
    odd = [tuple(p) for p in np.argwhere(fresh & ((each < lo) | (each > hi)))]
    if odd:
        ok = False
        note += (
            f"; filters {_names(odd)} alone fall outside [{lo * sigma0:.4g}, {hi * sigma0:.4g}] "
            f"(chi with {d} degrees of freedom, tail {tail:.2g} each)"
        )
    return Check("down", "fresh_scale", ok=ok, note=note)


def _mask(t):
    inherited = t.sources >= 0
    marked = t.mask
    bad = []
    if np.any(marked != inherited):
        wrong_in = [tuple(p) for p in np.argwhere(marked & ~inherited)]
        wrong_out = [tuple(p) for p in np.argwhere(~marked & inherited)]
        bad.append(
            f"down/inherited marks {_per_class(marked.sum(axis=1))} filters, the sources "
            f"{t.how} give {_per_class(inherited.sum(axis=1))}"
            + (f"; marked but fresh: {_names(wrong_in)}" if wrong_in else "")
            + (f"; inherited but not marked: {_names(wrong_out)}" if wrong_out else "")
        )
    freeze = t.config.get("freeze_inherited")
    if isinstance(freeze, bool):
        expected = ~marked if freeze else np.ones_like(marked)
        if np.any(t.trainable != expected):
            rule = "exactly the marked filters" if freeze else "no filter"
            flag = str(freeze).lower()
            bad.append(f"freeze_inherited = {flag} freezes {rule}, down/trainable does not")
    if bad:
        return Check("down", "inherited_mask", ok=False, note="; ".join(bad))
    return Check(
        "down",
        "inherited_mask",
        note=f"down/inherited marks the {int(marked.sum())} inherited filters",
    )


def _entry_checks(t):
    """The transfer with ``entry`` granularity: every entry of W is inherited
    in place with probability alpha (docs/model.md §5.2)."""
    if t.W_up.shape != t.W0.shape:
        return [
            Check(
                "down",
                "transfer_sources",
                ok=False,
                note=f"entry granularity needs up and down of one width: up/W has "
                f"{t.W_up.shape[1]} filters per class, down/W0 {t.W0.shape[1]}",
            )
        ]
    scale = np.abs(t.c * t.W_up).max(axis=-1, keepdims=True)
    gap = np.abs(t.W0 - t.c * t.W_up)
    mask = t.mask
    wrong = int((mask & (gap > t.tol * scale)).sum())
    exact = int((~mask & (gap <= SAME * EPS64 * scale)).sum())
    src = np.where(mask.any(axis=2), np.arange(mask.shape[1])[None, :], -1)
    recorded = t.declared is None or np.array_equal(t.declared, src)
    ok = wrong == 0 and exact == 0 and recorded
    note = (
        f"{wrong} marked entries differ from c x up/W[-1] (c = {t.c:g}{t.c_note}, within "
        f"{t.tol:.3g} of the filter's scale), {exact} unmarked entries equal it"
        + ("" if recorded else "; down/inherited_from is not each filter's own index")
    )
    checks = [Check("down", "transfer_sources", ok=ok, note=note)]
    alpha = _config_number(t.config, "alpha", 0.0, 1.0)
    if isinstance(alpha, str):
        checks.append(Check("down", "transfer_count", skipped=True, note=alpha))
    else:
        N, k = mask.size, int(mask.sum())
        slack = 6 * math.sqrt(N * alpha * (1 - alpha)) + 1
        checks.append(
            Check(
                "down",
                "transfer_count",
                ok=abs(k - N * alpha) <= slack,
                note=f"{k} of {N} entries inherited; config alpha = {alpha:g} expects "
                f"{N * alpha:.1f} +- {slack:.1f} (6 binomial standard deviations + 1)",
            )
        )
    sigma0 = _config_number(t.config, "sigma_0", 0.0)
    if isinstance(sigma0, str) or sigma0 <= 0:
        checks.append(Check("down", "fresh_scale", skipped=True, note=str(sigma0)))
    else:
        ok, note = _scale_check(t.W0[~mask], sigma0, "fresh entries")
        checks.append(Check("down", "fresh_scale", ok=ok, note=note))
    return checks
