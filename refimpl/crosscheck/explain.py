"""Explain mode: which combination of convention variants reproduces a file.

A stage whose weights or loss differ from refimpl's replay is replayed again
from the file's own inputs under combinations of the variants of
:mod:`refimpl.crosscheck.variants` (filter_sum, patch_mean, bias, swapped
classes, the penalty in the stored loss, a step factor, momentum or a
step-size schedule estimated from the file, ReLU'(0) in {1, 1/2}, weight
decay on frozen filters, float32 arithmetic), each judged against the file
(W at the snapshots, the loss at every step, the bias when the file stores
one ``s/b``) under every snapshot offset (0, +1: recorded after the update,
-1).

The search (docs/model.md §9.6):

- **step 0** decides the structure: only the networks (subsets of
  filter_sum, patch_mean, the file's bias, the penalty, swapped classes)
  whose loss at W0 is the file's loss[0] are kept; when none is, nothing is
  replayed and the result says why (a different network function at step 0:
  likely a bias, store s/b0);
- **estimated, not searched**: per structure the step factor c (from the
  first step), the momentum mu (from the loss after step 2) and a schedule
  (the factor of every step from the loss at every step,
  :mod:`refimpl.crosscheck.estimate`) are proposals that become candidates;
- **pruned** where a variant cannot matter: ReLU'(0) when no pre-activation
  of the candidate's run is exactly 0, loss_with_decay when lambda = 0,
  filter_sum when m = 1, patch_mean when P = 1, float32 arithmetic when the
  file's weights are not float32 numbers, decay_frozen when no frozen filter
  moves;
- **screened** on a prefix of the run (:data:`SCREEN_STEPS`, or T/20 when
  longer): only the candidates that agree there, and the :data:`SHOW` best,
  are replayed in full;
- **fast**: float64 replays run in the span of the distinct patches
  (:mod:`refimpl.crosscheck.dynamics`, Gram space) when that is cheaper;
- the **smallest** set of variants that agrees is named; the best
  :data:`SHOW` candidates are shown with their numbers.

Judgement: a candidate is compared with the file at the user's rtol in a
file of float64 numbers, and at float32 precision in a file whose weights
are float32 numbers (:mod:`refimpl.crosscheck.precision`).
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import replace

import numpy as np

from ..errors import TrajectoryError
from .compare import DEFAULT_RTOL, EPS32, compare_arrays
from .consistency import loss0_check, step0_losses
from .dynamics import StageReplay
from .estimate import (
    estimate_lr_scale,
    estimate_momentum,
    estimate_schedule,
    nice,
    plausible,
    segments,
)
from .precision import (  # noqa: F401  (re-exported: explain's judgement of float32 candidates)
    ARITHMETIC_VERDICT,
    FLOAT32_FACTOR,
    STORAGE_VERDICT,
    float32_file,
    judge_at_float32,
    judge_float32,
)
from .variants import (
    VARIANTS,
    Convention,
    VariantRun,
    parse_convention,  # noqa: F401
    schedule_text,
    variant_train,
)

__all__ = [
    "FLOAT32_FACTOR",
    "SCREEN_STEPS",
    "SHOW",
    "Convention",
    "VARIANTS",
    "variant_train",
    "estimate_lr_scale",
    "explain_stage",
    "format_explanation",
    "judge_float32",
    "float32_file",
    "judge_at_float32",
    "STORAGE_VERDICT",
    "ARITHMETIC_VERDICT",
]

SCREEN_STEPS = 50  # the prefix every candidate is replayed on (or T/20 when longer)
SHOW = 5  # candidates shown


OFFSETS = (0, 1, -1)  # snapshot offsets judged on every replay (docs: Convention)


class _Search:
    """Replays of one stage under candidates (:class:`StageReplay`: Gram
    space where cheaper), cached by convention and length, and their
    judgement against the file."""

    def __init__(self, view, T, rtol, atol):
        self.view, self.T, self.rtol, self.atol = view, T, rtol, atol
        self.st = StageReplay(view)
        self.steps = view.steps[view.steps <= T]
        self.f32 = float32_file(view)
        self.lam = float(view.weight_decay)
        self.cache = {}

    def mapped(self, offset, T):
        """(positions of the file's snapshots judged over 0..T, the replay's
        steps they are compared with under ``offset``)."""
        s = self.steps[self.steps <= T]
        mapped = np.clip(s + offset, 0, self.view.T)
        keep = mapped <= T
        return np.flatnonzero(keep), mapped[keep]

    def run(self, conv, T) -> VariantRun:
        key = (replace(conv, loss_with_decay=False, snapshot_offset=0), T)
        if key not in self.cache:
            record = sorted(set().union(*(self.mapped(o, T)[1].tolist() for o in OFFSETS)))
            W, b, loss, penalty, logits, zeros = self.st.run(key[0], T, record)
            two, m, d = self.view.W0.shape
            b = None if b is None else b.reshape(len(record), 2, m)
            at = np.array(record, dtype=np.int64)
            self.cache[key] = VariantRun(
                W.reshape(len(record), 2, m, d), loss, zeros, b, penalty, logits, at
            )
        r = self.cache[key]
        return r._replace(loss=r.loss + r.penalty) if conv.loss_with_decay else r

    def judge(self, conv, T, note=""):
        """The comparison of the file with candidate ``conv`` over steps 0..T."""
        v = self.view
        pos, mapped = self.mapped(conv.snapshot_offset, T)
        steps = self.steps[pos]
        r64 = self.run(replace(conv, dtype="float64"), T)
        idx = np.searchsorted(r64.at, mapped)
        floor = None
        if conv.dtype == "float32":
            tol_W, tol_L, floor = judge_float32(self.run(conv, T), r64, r64.at, self.rtol)
        else:
            tol_W = tol_L = max(self.rtol, EPS32) if self.f32 else self.rtol
        W_ref = np.array(r64.W[idx])
        b_ref = np.zeros(np.shape(v.b[pos])) if r64.b is None and v.b is not None else None
        if r64.b is not None:
            b_ref = np.array(r64.b[idx])
        if self.f32:  # snapshot 0 is stored as float32(W0): storage, not dynamics
            W_ref[mapped == 0] = W_ref[mapped == 0].astype(np.float32)
            if b_ref is not None:
                b_ref[mapped == 0] = b_ref[mapped == 0].astype(np.float32)
            floor = np.zeros(T + 1) if floor is None else np.array(floor)
            floor[0] = max(floor[0], 64 * EPS32 * max(abs(r64.loss[0]), 1.0))
        out = {
            "name": conv.label(),
            "names": conv.names(),
            "size": len(conv.names()),
            "description": conv.describe(b0_from_file=v.b0 is not None),
            "spec": conv.spec(),
            "convention": conv,
            "steps": T,
            "rtol_W": tol_W,
            "rtol_loss": tol_L,
            "note": note,
        }
        _, out["W_max_rel"], out["W_first_step"] = compare_arrays(
            v.W[pos], W_ref, steps, tol_W, self.atol
        )
        _, out["loss_max_rel"], out["loss_first_step"] = compare_arrays(
            v.loss[: T + 1, None], r64.loss[:, None], np.arange(T + 1), tol_L, self.atol, floor
        )
        rels = [out["W_max_rel"] / tol_W, out["loss_max_rel"] / tol_L]
        firsts = [out["W_first_step"], out["loss_first_step"]]
        if v.b is not None:
            _, out["b_max_rel"], out["b_first_step"] = compare_arrays(
                v.b[pos], b_ref, steps, tol_W, self.atol
            )
            rels.append(out["b_max_rel"] / tol_W)
            firsts.append(out["b_first_step"])
        if floor is not None:
            out["loss_unresolved"] = int(np.sum(floor[1:] > tol_L * np.abs(r64.loss[1:])))
        out["agrees"] = all(f is None for f in firsts)
        out["score"] = float(max(rels)) if all(map(math.isfinite, rels)) else math.inf
        out["zeros"] = r64.zeros
        return out


def _structures(search):
    """The structural departures (filter_sum, patch_mean, bias, the penalty in
    the loss, swapped classes) whose network has the file's loss at step 0,
    one per distinct dynamics; the reasons for the others. A bias without a
    stored b0 starts at 0 and has the step-0 loss of the network without it.

    Returns
    -------
    kept : list of Convention
    pruned : dict of str to str
    """
    view = search.view
    m, P = view.W0.shape[1], view.X.shape[1]
    theirs = float(view.loss[0])
    tol = max(10 * search.rtol, 64 * (EPS32 if search.f32 else 0.0)) * max(abs(theirs), 1.0)
    pruned, kept, seen = {}, [], {}
    if m == 1:
        pruned["filter_sum"] = "m = 1: the sum over filters is the mean"
    if P == 1:
        pruned["patch_mean"] = "P = 1: the sum over patches is the mean"
    matching = [c for value, c in step0_losses(view).values() if abs(value - theirs) <= tol]
    if view.b0 is None:
        matching += [replace(c, bias=True) for c in matching]
    for c in matching:
        if (c.filter_sum and m == 1) or (c.patch_mean and P == 1):
            continue
        scale = (1.0 if c.filter_sum else 1.0 / m) * (1.0 / P if c.patch_mean else 1.0)
        key = (scale, c.bias, c.swap_classes, c.loss_with_decay, c.loss_sum)
        if key in seen:
            pruned[c.label()] = f"the same dynamics as {seen[key].label()} here (m = P = {m})"
            continue
        seen[key] = c
        kept.append(c)
    for name in ("filter_sum", "patch_mean", "bias", "loss_with_decay", "swap_classes", "loss_sum"):
        if kept and name not in pruned and not any(getattr(c, name) for c in kept):
            pruned[name] = "no network with it has the file's loss at step 0"
    if search.lam == 0.0:
        pruned["loss_with_decay"] = "lambda = 0: the penalty is 0"
    return kept, pruned


def _dynamics(search, base, T):
    """The step-size and momentum options of a structure, estimated from the
    file (:mod:`refimpl.crosscheck.estimate`): (options as dicts of
    Convention fields, notes by option, reasons for what was not proposed)."""
    view, st, f32 = search.view, search.st, search.f32
    tol, why = 1e-4 if f32 else 1e-9, {}
    if view.steps[1:2].size and view.steps[1] <= T:
        c, reason = estimate_lr_scale(view, base, tol, st=st)
    else:
        c, reason = None, "no snapshot after step 0 within the steps replayed"
    lr = 1.0 if c is None else c
    mu = estimate_momentum(st, replace(base, lr_scale=lr), tol, search.rtol, f32)
    options, notes = [{}], {}
    if c is not None and c != 1.0:
        options.append({"lr_scale": c})
        notes["lr_scale"] = f"c estimated from the first step: {c:.12g}"
    else:
        why["lr_scale"] = "the first step gives c = 1" if c is not None else reason
    if mu:
        options.append({"lr_scale": lr, "momentum": mu})
        notes["momentum"] = f"momentum estimated from the loss after step 2: {mu:.12g}"
        options.append(_nesterov(lr, mu, tol))
        notes["nesterov"] = (
            f"Nesterov momentum {options[-1]['momentum']:.12g} and step factor "
            f"{options[-1]['lr_scale']:.12g} from the same two steps"
        )
    else:
        why["momentum"] = "no momentum: the loss after step 2 is that of plain GD"
    # a schedule under the momentum found and without: a growing step (a
    # warm-up) also looks like momentum after step 2
    walked = {0.0: None} if not mu else {mu: None, 0.0: None}
    for mom in walked:
        conv = replace(base, lr_scale=lr, momentum=mom)
        walked[mom] = estimate_schedule(st, conv, T, tol, search.rtol, f32)
        sched = segments(walked[mom])
        if len(sched) > 1 and plausible(sched):
            options.append({"lr_schedule": sched, "momentum": mom, "lr_scale": 1.0})
            notes["lr_schedule"] = (
                f"schedule estimated from the loss at every step: {schedule_text(sched)}"
            )
    if "lr_schedule" not in notes:
        short = min(len(f) for f in walked.values())
        constant = all(len(segments(f)) == 1 for f in walked.values())
        why["lr_schedule"] = (
            f"no step size gives the file's loss after step {short + 1}"
            if short < T
            else "the loss at every step is that of a constant step size"
            if constant
            else "the step sizes read off the loss change from step to step irregularly "
            "(rounding, not a schedule)"
        )
    return options, notes, why


def _nesterov(c0, g, tol):
    """The Nesterov reading of a first step of factor ``c0`` and a heavy-ball
    momentum ``g`` read off the loss after step 2 (docs/model.md §9.6): with
    Nesterov's step the first update is c (1 + mu) and the second adds
    c mu^2 times the first gradient, so c0 = c (1 + mu) and
    g = mu^2 / (1 + mu): mu = (g + sqrt(g^2 + 4 g)) / 2, c = c0 / (1 + mu)."""
    mu = nice((g + math.sqrt(g * g + 4 * g)) / 2, tol)
    return {"lr_scale": nice(c0 / (1 + mu), tol), "momentum": mu, "nesterov": True}


def _decay_frozen(search):
    """(options of decay_frozen, the reason when only False is tried)."""
    v = search.view
    frozen = ~np.asarray(v.trainable, bool)
    if search.lam == 0.0:
        return (False,), "lambda = 0: there is no decay"
    if not frozen.any():
        return (False,), "no filter is frozen"
    moved = np.any(v.f64("W")[:, frozen] != v.f64("W0")[frozen])
    return ((False, True), None) if moved else ((False,), "the frozen filters do not move")


def _candidates(search, first_T):
    """Every candidate convention, the notes of the estimated values, the
    pruned variants and whether any replay met a zero pre-activation."""
    structures, pruned = _structures(search)
    frozen_options, why = _decay_frozen(search)
    if why:
        pruned["decay_frozen"] = why
    if not search.f32:
        pruned["float32"] = "the file's weights are not float32 numbers"
    dtypes = ("float64", "float32") if search.f32 else ("float64",)
    candidates, notes, any_zeros = [], {}, False
    for base in (replace(c, decay_frozen=df) for c in structures for df in frozen_options):
        options, base_notes, reasons = _dynamics(search, base, search.T)
        for name, reason in reasons.items():
            pruned.setdefault(name, reason)
        zeros = search.run(base, first_T).zeros > 0
        any_zeros |= zeros
        relus = (0.0, 1.0, 0.5) if zeros else (0.0,)
        for opt, rp, dt in itertools.product(options, relus, dtypes):
            conv = replace(base, **opt, relu_prime_zero=rp, dtype=dt)
            candidates.append(conv)
            keys = ["nesterov"] if "nesterov" in opt else [k for k in opt if k in base_notes]
            notes[conv] = "; ".join(base_notes[k] for k in keys)
    for name in ("lr_scale", "momentum", "lr_schedule"):
        if any(name in c.names() for c in candidates):
            pruned.pop(name, None)
    return candidates, notes, pruned, any_zeros


def _with_offsets(convs, search):
    """Each candidate under every snapshot offset (judged on the same replay)."""
    offsets = OFFSETS if len(search.steps) > 1 else (0,)
    return [replace(c, snapshot_offset=o) for c in convs for o in offsets]


def _order(rows):
    return sorted(
        rows, key=lambda r: (not r["agrees"], r["size"] if r["agrees"] else 0, r["score"])
    )


def _screen(search, judged, T, notes):
    """The full replays after the prefix: every candidate that agreed there
    and the SHOW best (with ReLU'(0) variants when zeros appear later)."""
    keep = [r for r in judged if r["agrees"]] + _order(judged)[:SHOW]
    chosen = list({r["name"]: r["convention"] for r in keep}.values())
    screened, any_zeros = {r["convention"] for r in judged}, False
    for conv in list(chosen):  # ReLU'(0) may matter after the prefix
        if (
            conv.relu_prime_zero == 0.0
            and replace(conv, relu_prime_zero=1.0) not in screened
            and search.run(replace(conv, dtype="float64"), T).zeros
        ):
            chosen += [replace(conv, relu_prime_zero=rp) for rp in (1.0, 0.5)]
            any_zeros = True
    return [_judge(search, c, T, notes) for c in chosen], any_zeros


def _judge(search, conv, T, notes):
    """search.judge with the note of the candidate's estimated values."""
    plain = replace(conv, snapshot_offset=0)
    note = notes.get(plain, notes.get(replace(plain, relu_prime_zero=0.0), ""))
    return search.judge(conv, T, note)


def explain_stage(
    traj, stage, rtol=DEFAULT_RTOL, atol=None, max_steps=None, screen_steps=None, progress=None
):
    """Replay a stage of a file under combinations of convention variants and
    name the smallest one that agrees with the file (module docstring).

    Parameters
    ----------
    traj : refimpl.trajectory.Trajectory
        The loaded file.
    stage : str
        The stage explained.
    rtol, atol : float
        The user's tolerances (float64 judgement).
    max_steps : int, optional
        Replay only steps 0..max_steps.
    screen_steps : int, optional
        The prefix every candidate is replayed on; default max(SCREEN_STEPS,
        T // 20). No screening when T <= 2 x the prefix.
    progress : refimpl.lab.progress.Progress, optional
        Receives the estimate before the search and progress lines on long
        searches.

    Returns
    -------
    dict
        ``explanation`` (names of the smallest agreeing set of variants, [] when
        none or when the reference itself agrees, see ``matches``),
        ``description``, ``convention`` (its ``--convention`` text, with the
        estimated values), ``matches`` (labels of every agreeing candidate,
        smallest first), ``candidates`` (the SHOW best, dicts with W_max_rel,
        loss_max_rel, b_max_rel, rtol_W, rtol_loss, first steps, agrees,
        note), ``baseline`` (the reference convention), ``pruned`` (variant ->
        reason), ``judged`` (how each quantity was judged), ``step0`` (why no
        network has the file's step-0 loss, or None), ``steps``,
        ``screen_steps``, ``tried``, ``replayed``, ``float32_file``,
        ``seconds``.

    Raises
    ------
    TrajectoryError
        ``max_steps`` or ``screen_steps`` below 1, or a stage the file does
        not have.
    """
    start = time.monotonic()
    view = traj.stage(stage)
    T = view.T
    if max_steps is not None:
        if max_steps < 1:
            raise TrajectoryError(f"--explain-steps must be >= 1, got {max_steps}")
        T = min(T, int(max_steps))
    if screen_steps is not None and (isinstance(screen_steps, bool) or int(screen_steps) < 1):
        raise TrajectoryError(f"explain: screen_steps must be >= 1, got {screen_steps!r}")
    search = _Search(view, T, rtol, atol)
    prefix = max(SCREEN_STEPS, T // 20) if screen_steps is None else int(screen_steps)
    screen = prefix if T > 2 * prefix else None
    first_T = screen or T
    convs, notes, pruned, any_zeros = _candidates(search, first_T)
    step0 = None if convs else loss0_check(view, rtol).note
    rows = _with_offsets(convs, search)
    _announce(progress, stage, search, len(rows), first_T, start)
    judged = []
    for k, conv in enumerate(rows):
        judged.append(_judge(search, conv, first_T, notes))
        if progress is not None:
            progress(f"explain {stage}", k + 1, len(rows))
    tried = len(judged)
    if screen is not None and judged:
        judged, later_zeros = _screen(search, judged, T, notes)
        any_zeros |= later_zeros
    if not any_zeros:
        for name in ("relu_prime_1", "relu_prime_half"):
            pruned[name] = (
                "no pre-activation is exactly 0 along the runs tried: ReLU'(0) cannot matter here"
            )
    baseline = search.judge(Convention(), T, "no variant (docs/model.md §3), for comparison")
    rows = _order(judged)
    agreeing = [r for r in rows if r["agrees"]]
    best = agreeing[0] if agreeing else None
    for r in rows + [baseline]:
        r.pop("convention")
    return {
        "explanation": best["names"] if best else [],
        "description": best["description"] if best else "",
        "convention": best["spec"] if best else "",
        "matches": [r["name"] for r in agreeing],
        "candidates": rows[:SHOW],
        "baseline": baseline,
        "pruned": pruned,
        "judged": _judged_lines(search, T),
        "step0": step0,
        "steps": T,
        "screen_steps": screen,
        "tried": tried,
        "replayed": len(judged),
        "float32_file": search.f32,
        "seconds": time.monotonic() - start,
    }


def _announce(progress, stage, search, n_rows, first_T, start):
    """The estimate of the search's time, from the time spent so far (the
    estimates and one prefix replay per structure) and the replays to come."""
    if progress is None:
        return
    spent = time.monotonic() - start
    runs = len(search.cache) or 1
    per_step = spent / max(runs * first_T, 1)
    rest = per_step * (n_rows / 3 * first_T + (SHOW + 1) * search.T)
    progress.note(
        f"explain {stage}: {n_rows} candidates over steps 0..{first_T}, then the best over "
        f"0..{search.T}; about {spent + rest:.0f} s"
    )


def _judged_lines(search, T):
    """How each quantity was judged, in words."""
    b = ", the bias b at the snapshots" if search.view.b is not None else ""
    what = f"W at the snapshots{b} and the loss at every step 0..{T}"
    if not search.f32:
        return [f"{what}, at rtol {search.rtol:g} (a file of float64 numbers)"]
    return [
        f"{what}; the file's weights are float32 numbers, so snapshot 0 is compared with "
        "float32(W0) and the step-0 loss at float32 resolution",
        f"candidates with float32 arithmetic: W{' and b' if b else ''} within "
        f"{FLOAT32_FACTOR:g} x the normwise drift of the candidate's float32 replay from its "
        f"float64 replay (at least {FLOAT32_FACTOR:g} eps32); the loss likewise at the steps "
        f"where float32 resolves it (resolution {FLOAT32_FACTOR:g} eps32 mean_i(F_+1 + F_-1) "
        "within the tolerance), elsewhere within that resolution",
        f"candidates in float64 arithmetic: every quantity at float32 storage precision "
        f"(rtol {EPS32:.2g})",
    ]


def _verdict(r):
    if r["agrees"]:
        return "AGREES"
    firsts = [r.get(k) for k in ("W_first_step", "loss_first_step", "b_first_step")]
    return f"differs from step {min(s for s in firsts if s is not None)}"


def format_explanation(stage, ex):
    """Text lines of one stage's explain-mode result.

    Parameters
    ----------
    stage : str
        The stage.
    ex : dict
        Its result from :func:`explain_stage` (or ``{"skipped": reason}``).

    Returns
    -------
    list of str
        The lines: what was replayed, how quantities were judged, the variants
        not tried, a table of the baseline and the best candidates, and the
        conclusion (with its ``--convention`` text when a candidate agrees).
    """
    if "skipped" in ex:
        return [f"explain {stage}: {ex['skipped']}"]
    screened = (
        f"; screened on steps 0..{ex['screen_steps']}: {ex['tried']} candidates, "
        f"{ex['replayed']} replayed in full"
        if ex["screen_steps"]
        else f"; {ex['tried']} candidates"
    )
    lines = [
        f"explain {stage}: combinations of convention variants replayed from the file's "
        f"inputs over steps 0..{ex['steps']}{screened} ({ex['seconds']:.1f} s)"
    ]
    lines += [f"  judged: {j}" for j in ex["judged"]]
    for name, why in ex["pruned"].items():
        lines.append(f"  not tried: {name}: {why}")
    has_b = "b_max_rel" in ex["baseline"]
    lines.append(
        f"  {'candidate':40} {'W max rel':>10} {'loss max rel':>12}"
        + (f" {'b max rel':>10}" if has_b else "")
        + f" {'rtol W/loss':>17}  verdict"
    )
    shown = [r for r in ex["candidates"] if r["name"] != "reference"]
    for r in [ex["baseline"]] + shown:
        verdict = f"baseline, {_verdict(r).lower()}" if r is ex["baseline"] else _verdict(r)
        extra = f"{r['b_max_rel']:10.3g} " if has_b else ""
        unres = r.get("loss_unresolved")
        note = "; ".join(
            filter(
                None,
                [
                    r["note"] if r is not ex["baseline"] else "",
                    f"loss judged by float32 resolution at {unres} steps" if unres else "",
                ],
            )
        )
        lines.append(
            f"  {r['name']:40} {r['W_max_rel']:10.3g} {r['loss_max_rel']:12.3g} "
            f"{extra}{r['rtol_W']:8.2g}/{r['rtol_loss']:<8.2g}  {verdict}"
            + (f" ({note})" if note else "")
        )
    if ex["explanation"]:
        best = ex["candidates"][0]
        lines.append(
            f"  => {stage} matches the reference with: "
            f"{' + '.join(ex['explanation'])} ({ex['description']}; W max rel "
            f"{best['W_max_rel']:.3g}, loss max rel {best['loss_max_rel']:.3g}); replay it "
            f"with --convention {ex['convention']}"
        )
    elif "reference" in ex["matches"] and ex["float32_file"]:
        lines.append(
            f"  => {stage}: refimpl's own dynamics, rounded to float32 on output "
            "(no convention departs)"
        )
    elif "reference" in ex["matches"]:
        lines.append(
            f"  => {stage}: explain's own replay of the reference conventions agrees "
            "(no convention departs; the difference is at the tolerance's edge)"
        )
    elif ex.get("step0"):
        lines.append(f"  => no network tried has the file's loss at step 0: {ex['step0']}")
    else:
        lines.append(
            f"  => no combination of the convention variants tried explains the "
            f"difference in {stage}"
        )
    return lines
