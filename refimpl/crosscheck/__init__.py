"""Cross-checking other implementations against refimpl's exact dynamics:
replay, compare, explain, and coefficient recovery.

Another implementation (PyTorch, JAX, ...) exports its run as a trajectory
file in format 1 (:mod:`refimpl.trajectory`); often it holds weights but no
coefficients. This package

* **replays** a file (:func:`replay`): it reruns
  :func:`refimpl.train.train_stage` from the file's own inputs (X, y, W0, eta,
  weight decay, trainable mask, patch roles) for the file's number of steps,
  with snapshots at the file's snapshot steps (no epsilon rule); or, with
  ``convention``, the variant GD under conventions the user names
  (:func:`convention_replay`);
* **compares** two runs stage by stage for every quantity (W, loss, gamma,
  rho_bar, rho_under, and the bias b when a run has one; :mod:`.compare`);
* recovers **coefficients by projection** (docs/model.md §4.4) for files
  that lack them (``python -m refimpl decompose``; :mod:`.coefficients`),
  with the patch roles from ``s/patch_role`` or the data;
* **explains** a failed comparison (:mod:`.explain`): it searches the
  combinations of the usual convention differences of framework code
  (:mod:`.variants`) for the smallest that agrees;
* holds two framework **clients** that train a file's inputs the way
  framework users write it: :mod:`.torch_client` (PyTorch) and
  :mod:`.jax_client` (JAX), each optional.

Exit status of ``crosscheck`` (command line, :mod:`refimpl.cli.crosscheck`):
0 when every quantity agrees, 1 when any differs or a consistency check of
the file itself fails (:mod:`.consistency`, before any replay), 2 for
unusable input (one line naming the reason). A file whose weights are
float32 numbers is judged at float32 precision
(:func:`.precision.judge_at_float32`; precision is not a departure) unless
``strict_precision``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from ..budget import check, format_count, stage_work
from ..config import integer_argument, real_argument, shown
from ..errors import ConfigError, TrajectoryError, UsageError
from ..files import check_output
from ..train import train_stage
from ..trajectory import COEFFICIENT_KEYS, STAGES, load, save
from .coefficients import (
    basis_note,
    file_run,
    project_view,
    recover_coefficients,
    span_error,
)
from .compare import (
    DEFAULT_RTOL,
    EPS32,
    INPUT_KEYS,
    QUANTITIES,
    Row,
    check_same_problem,
    compare_arrays,
    compare_runs,
    float32_valued,
)
from .consistency import Check, check_file
from .explain import estimate_lr_scale, explain_stage, format_explanation
from .precision import FLOAT32_FACTOR, float32_file, judge_at_float32, judge_float32
from .recorder import Recorder, as_array, as_trajectory, run_arrays
from .variants import (
    VARIANTS,
    Convention,
    VariantRun,
    parse_convention,
    schedule_text,
    variant_arrays,
    variant_train,
)

__all__ = [
    "QUANTITIES",
    "DEFAULT_RTOL",
    "FLOAT32_FACTOR",
    "INPUT_KEYS",
    "EPS32",
    "Row",
    "Report",
    "Check",
    "check_file",
    "compare_arrays",
    "compare_runs",
    "check_same_problem",
    "float32_valued",
    "recover_coefficients",
    "decompose",
    "replay",
    "convention_replay",
    "crosscheck",
    "Convention",
    "VARIANTS",
    "VariantRun",
    "parse_convention",
    "schedule_text",
    "variant_train",
    "variant_arrays",
    "estimate_lr_scale",
    "explain_stage",
    "format_explanation",
    "Recorder",
    "as_array",
    "as_trajectory",
    "run_arrays",
]


def replay(view):
    """Rerun a stage of a file with refimpl from the file's own inputs.

    The file's number of steps T = steps[-1] is replayed (no epsilon rule),
    with snapshots at the file's snapshot steps and the coefficients tracked
    with the stage's patch roles (docs/model.md §3-4).

    Parameters
    ----------
    view : refimpl.trajectory.StageView
        The stage of the file to replay.

    Returns
    -------
    refimpl.train.Stage
    """
    return train_stage(
        view.f64("W0"),
        view.task(),
        float(view.eta),
        view.T,
        weight_decay=float(view.weight_decay),
        trainable=view.trainable,
        epsilon=0.0,
        snapshots=view.steps,
        track=True,
    )


def _stage_run(stage):
    run = {"steps": stage.steps, "W": stage.W, "loss": stage.loss}
    run.update({c: getattr(stage, c) for c in COEFFICIENT_KEYS if getattr(stage, c) is not None})
    return run


def convention_replay(view, conv, rtol=DEFAULT_RTOL):
    """Replay a stage under named conventions (:func:`variant_train`).

    Parameters
    ----------
    view : refimpl.trajectory.StageView
        The stage of the file: its inputs, T and snapshot steps.
    conv : Convention
        The conventions replayed (its ``snapshot_offset`` shifts the steps
        the file's snapshots are taken to hold).
    rtol : float, optional
        The report's tolerance, the base of the float32 judgement.

    Returns
    -------
    run : dict
        ``steps``, ``W``, ``loss``, ``b`` (with the bias) and the coefficients
        by projection of the replay's weights when the basis allows.
    note : str
        Where the coefficients came from.
    tolerances : dict
        quantity -> rtol (float32 conventions: the float32 judgement of
        :func:`refimpl.crosscheck.precision.judge_float32`; else empty).
    floors : dict
        ``loss`` -> float32's resolution per step (float32 conventions).
    judged : str
        How the quantities were judged, in words.
    """
    # the file's snapshot at step s holds the weights after s + offset steps
    shifted = np.clip(view.steps + conv.snapshot_offset, 0, view.T)
    args = (
        view.W0,
        view.X,
        view.y,
        float(view.eta),
        float(view.weight_decay),
        view.trainable,
        view.T,
        shifted,
    )
    r64 = variant_train(*args, replace(conv, dtype="float64"), b0=view.b0)
    pick = np.searchsorted(r64.at, shifted)
    run = {"steps": view.steps, "W": r64.W[pick], "loss": r64.loss}
    if r64.b is not None:
        run["b"] = r64.b[pick]
    # coefficients by projection: under the convention's own step when the file
    # brings coefficients of its own (a constant step factor decays W0 by
    # (1 - c eta lambda)^t); otherwise exactly as the file's own projection
    # (coefficients.file_run), so that equal weights give equal coefficients
    own = view.has_coefficients and not (conv.momentum or conv.lr_schedule)
    try:
        coef = recover_coefficients(
            run["W"],
            view.W0,
            shifted if own else view.steps,
            view.trainable,
            (conv.lr_scale if own else 1.0) * float(view.eta),
            float(view.weight_decay),
            view.signals,
            view.xi,
            view.y,
        )
        run.update(zip(COEFFICIENT_KEYS, coef, strict=True))
        note = "reference coefficients by projection of the convention replay"
    except ValueError as exc:
        note = str(exc)
    judged = f"replay under {conv.label()} ({conv.describe(view.b0 is not None)})"
    if conv.dtype != "float32":
        return run, note, {}, {}, judged + f", judged at rtol {rtol:g}"
    tol_W, tol_L, floor = judge_float32(variant_train(*args, conv, b0=view.b0), r64, r64.at, rtol)
    tolerances = {q: tol_W for q in ("W", "b") + COEFFICIENT_KEYS}
    tolerances["loss"] = tol_L
    judged += (
        f"; float32: W, b and coefficients within {FLOAT32_FACTOR:g} x the drift of a "
        f"float32 replay (rtol {tol_W:.2g}), the loss at rtol {tol_L:.2g} where float32 "
        "resolves it and within its resolution elsewhere"
    )
    return run, note, tolerances, {"loss": floor}, judged


@dataclass
class Report:
    """The result of :func:`crosscheck`.

    Attributes
    ----------
    theirs, reference : str
        The checked file; the reference file or the replay.
    rtol : float
        The relative tolerance asked for.
    atol : float or None
        The absolute tolerance asked for; None: rtol times max|ref| per
        snapshot.
    rows : list of Row
        One per stage and quantity compared (or skipped).
    notes : list of str
        Remarks on the comparison (a stage in one file only, ...).
    explanations : dict of str to dict
        Per failed stage, the explain-mode result of :func:`explain_stage`.
    precision : dict of str to dict
        Per stage judged at float32 precision (a float32 file without
        ``strict_precision``), how (:func:`.precision.judge_at_float32`).
    consistency : list of Check
        The checks of the file itself, made before any replay
        (:mod:`.consistency`); a failed one makes the status 1.
    """

    theirs: str
    reference: str
    rtol: float
    atol: float | None
    rows: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    explanations: dict = field(default_factory=dict)
    precision: dict = field(default_factory=dict)
    consistency: list = field(default_factory=list)

    @property
    def agree(self) -> bool:
        return all(r.ok for r in self.rows)

    @property
    def consistent(self) -> bool:
        """No consistency check of the file failed."""
        return all(c.ok for c in self.consistency)

    @property
    def status(self) -> int:
        """Exit status: 0 all agree and the file is consistent, 1 otherwise."""
        return 0 if self.agree and self.consistent else 1

    def failed_stages(self):
        return [
            s
            for s in dict.fromkeys(r.stage for r in self.rows)
            if any(not r.ok for r in self.rows if r.stage == s)
        ]

    def to_dict(self):
        """A JSON-ready dict (pass it through :func:`refimpl.files.jsonable`);
        ``precision`` only when some stage was judged at float32 precision."""
        out = {
            "theirs": self.theirs,
            "reference": self.reference,
            "rtol": self.rtol,
            "atol": self.atol,
            "agree": self.agree,
            "status": self.status,
            "rows": [dict(asdict(r), ok=r.ok) for r in self.rows],
            "notes": self.notes,
            "explanations": self.explanations,
            "consistent": self.consistent,
            "consistency": [dict(asdict(c), verdict=c.verdict) for c in self.consistency],
        }
        if self.precision:
            out["precision"] = self.precision
        return out

    def format(self) -> str:
        """The human-readable report."""
        atol = "rtol x max|ref| per snapshot" if self.atol is None else f"{self.atol:g}"
        lines = [
            f"crosscheck {self.theirs} against {self.reference}",
            f"tolerance: |a - b| > atol + rtol*|b| with rtol={self.rtol:g}, atol={atol}",
            "",
        ]
        if self.consistency:
            lines.append("consistency of the file (checked on the file alone, before any replay):")
            lines.extend(c.line() for c in self.consistency)
            lines.append("")
        lines.append(
            f"{'stage':8} {'quantity':10} {'max abs':>10} {'max rel':>10} {'compared':>8}  verdict"
        )
        for r in self.rows:
            if r.skipped:
                lines.append(
                    f"{r.stage:8} {r.quantity:10} {'-':>10} {'-':>10} {'-':>8}  "
                    f"not compared: {r.note}"
                )
                continue
            verdict = "agree" if r.first_step is None else f"DIFFERS from step {r.first_step}"
            extra = f"  ({r.note})" if r.note else ""
            lines.append(
                f"{r.stage:8} {r.quantity:10} {r.max_abs:10.3g} {r.max_rel:10.3g} "
                f"{r.compared:8d}  {verdict}{extra}"
            )
        for note in self.notes:
            lines.append(f"note: {note}")
        for stage, ex in self.explanations.items():
            lines.append("")
            lines.extend(format_explanation(stage, ex))
        lines.append("")
        skipped = [f"{r.stage}/{r.quantity}" for r in self.rows if r.skipped]
        if not self.agree:
            lines.append("RESULT: differences found in " + ", ".join(self.failed_stages()))
        elif skipped:
            lines.append(
                "RESULT: all compared quantities agree; not compared: " + ", ".join(skipped)
            )
        else:
            lines.append("RESULT: all quantities agree")
        if self.agree and self.precision:
            how = "; ".join(f"{s}: {p['verdict']}" for s, p in self.precision.items())
            lines[-1] += f" (at float32 precision: {how})"
        if not self.consistent:
            failed = [f"{c.stage}/{c.name}" for c in self.consistency if not c.ok]
            lines[-1] += "; the file is not consistent: " + ", ".join(failed)
        return "\n".join(lines)


def _check_tolerances(rtol, atol, explain, explain_steps, strict_precision=False):
    """The numeric arguments of :func:`crosscheck`, each a ConfigError naming
    it (and its option) when unusable, before any file is read; returns
    explain_steps as an int or None (5.0 -> 5; 2.5 refused, not truncated)."""
    real_argument("crosscheck: tolerances: rtol (--rtol)", rtol, 0.0)
    real_argument("crosscheck: tolerances: atol (--atol)", atol, 0.0, optional=True)
    for name, flag in (("explain", explain), ("strict_precision", strict_precision)):
        if not isinstance(flag, (bool, np.bool_)):
            raise ConfigError(f"crosscheck: {name} must be True or False, got {shown(flag)}")
    if explain_steps is None:
        return None
    return integer_argument("crosscheck: explain_steps (--explain-steps)", explain_steps, 1)


def _check_stages(stages):
    """``stages`` as a tuple of stage names, or None for all: a string is one
    stage or a comma-separated list (``"up"``, ``"up,down"``), never read
    letter by letter; a ConfigError names the parameter otherwise."""
    if stages is None:
        return None
    if isinstance(stages, str):
        stages = [s.strip() for s in stages.split(",")]
    if isinstance(stages, (bytes, Mapping)) or not isinstance(stages, Iterable):
        raise ConfigError(
            f"crosscheck: stages must be a stage name or a sequence of them, got {shown(stages)}"
        )
    stages = tuple(stages)
    unknown = [s for s in stages if not isinstance(s, str) or s not in STAGES]
    if unknown or not stages:
        got = f"unknown stage {shown(unknown[0])}" if unknown else "an empty selection"
        raise ConfigError(
            f"crosscheck: stages (--stage) must name stages among {', '.join(STAGES)} "
            f"(None for all), got {got}"
        )
    return stages


def _check_convention(convention):
    """``convention`` is None, a string, a Convention or a sequence of names
    (:func:`parse_convention` reads them); a ConfigError names it otherwise."""
    ok = convention is None or isinstance(convention, (str, Convention))
    if not ok and isinstance(convention, Iterable):
        if not isinstance(convention, (bytes, Mapping)):
            convention = tuple(convention)
            ok = all(isinstance(c, str) for c in convention)
    if not ok:
        raise ConfigError(
            "crosscheck: convention (--convention) must be names such as "
            f"'filter_sum,bias', a sequence of names or a Convention, got {shown(convention)}"
        )
    return convention


def _coefficient_notes(their_run, their_note, ref_run, ref_note):
    notes = {}
    for c in COEFFICIENT_KEYS:
        if c not in their_run or c not in ref_run:
            notes[c] = their_note if c not in their_run else ref_note
        elif their_note != "coefficients from the file" or ref_note not in (
            "tracked",
            "coefficients from the file",
        ):
            notes[c] = f"theirs: {their_note}; reference: {ref_note}"
    return notes


def _stages_to_compare(theirs, ref, stages):
    """The stages of THEIRS (and of the reference file, when given) to
    compare, restricted to ``stages``; TrajectoryError when none is left."""
    names = [s for s in theirs.stages if ref is None or s in ref.stages]
    if stages:
        unknown = [s for s in stages if s not in STAGES]
        if unknown:
            raise TrajectoryError(f"unknown stage {unknown[0]!r}; stages are {', '.join(STAGES)}")
        names = [s for s in names if s in stages]
    if not names:
        where = f"{theirs.path} has {', '.join(theirs.stages)}"
        if ref is not None:
            where += f", {ref.path} has {', '.join(ref.stages)}"
        raise TrajectoryError(f"no stage to compare: {where}")
    return names


def _check_budgets(theirs, names, replay, explain, explain_steps):
    """The replays of every compared stage are bounded as one job before any
    of them starts. Explain mode runs only on a difference, so it is not
    counted here (a file that agrees never pays for it): it is bounded, with
    the replays, when it is about to run (:func:`_check_explain_budget`)."""
    if replay:
        _check_job(theirs, names, (), explain_steps)


def _check_explain_budget(theirs, names, replay, explained, explain_steps):
    """Before explain mode runs on the stages ``explained``: the whole job
    (the replays done and the explain runs) within the budgets, else one line
    that says how to go without it (``--no-explain``, ``--explain-steps``)."""
    if explained:
        _check_job(theirs, names if replay else (), explained, explain_steps)


def _explain_steps(view, explain_steps):
    return view.T if explain_steps is None else min(explain_steps, view.T)


def _check_job(theirs, replayed, explained, explain_steps):
    """ResourceError when replaying the stages ``replayed`` once and the
    stages ``explained`` :data:`EXPLAIN_RUNS` times (their first
    ``explain_steps`` steps) exceeds the memory or the work budget."""
    views = {s: theirs.stage(s) for s in (*replayed, *explained)}
    jobs = [replay_cost(views[s]) for s in replayed]
    jobs += [
        replay_cost(views[s], _explain_steps(views[s], explain_steps), EXPLAIN_RUNS)
        for s in explained
    ]
    memory, work = max(m for m, _ in jobs), sum(w for _, w in jobs)
    big = max(views.values(), key=lambda v: v.T * v.X.size)
    n, P, d = big.X.shape
    shown = {"T": big.T, "n": n, "m": big.W0.shape[1], "d": d}
    if not explained:
        what = f"replaying stage{'s' * (len(replayed) > 1)} {', '.join(replayed)} of {theirs.path}"
        check(what, memory, work, tuple(shown), shown, advice="compare fewer stages (--stage)")
        return
    alone = format_count(sum(replay_cost(views[s])[1] for s in replayed))
    check(
        f"explaining the difference in stage{'s' * (len(explained) > 1)} {', '.join(explained)} "
        f"of {theirs.path} ({EXPLAIN_RUNS} replays each, after the comparison"
        + (f", which alone needs about {alone}" if replayed else "")
        + ")",
        memory,
        work,
        tuple(shown),
        shown,
        advice="skip explain mode with --no-explain, shorten it with --explain-steps N",
    )


def crosscheck(
    theirs_path,
    ref_path=None,
    rtol=DEFAULT_RTOL,
    atol=None,
    explain=True,
    stages=None,
    explain_steps=None,
    convention=None,
    strict_precision=False,
    progress=None,
):
    """Compare a trajectory file with refimpl: with a replay of its own inputs
    (``ref_path`` None) or with a second file.

    Parameters
    ----------
    theirs_path : str, PathLike, dict of arrays or Trajectory
        The run to check (coefficients optional): a file, its arrays in
        format 1 (numpy, PyTorch or JAX values; checked as a file is) or a
        loaded :class:`~refimpl.trajectory.Trajectory`
        (:func:`.recorder.as_trajectory`).
    ref_path : str, PathLike, dict of arrays or Trajectory, optional
        The reference run, of the same kinds; None replays ``theirs`` with
        refimpl.
    rtol : float
        Relative tolerance.
    atol : float or None
        Absolute tolerance; None: rtol times max|ref| per snapshot. See
        :mod:`refimpl.crosscheck.compare`.
    explain : bool
        Run explain mode on every stage whose W, loss or bias differs.
    stages : str or sequence of str, optional
        Only these stages: a name, comma-separated names (``"up,down"``) or
        a sequence of names; None for all.
    explain_steps : int, optional
        Explain mode replays only the first this many steps (for long runs).
    convention : str, sequence of str or Convention, optional
        Replay under these conventions instead of refimpl's
        (``"filter_sum,patch_mean,bias,float32"``; :func:`parse_convention`).
    strict_precision : bool
        Judge a file whose weights are float32 numbers at ``rtol`` like any
        other (it then differs unless its dynamics agree at that rtol). By
        default such a file is judged at float32 precision: at storage
        precision, else against the drift of a float32 replay
        (:func:`.precision.judge_at_float32`); with a convention, float32
        arithmetic is added to it.
    progress : refimpl.lab.progress.Progress, optional
        Receives explain mode's estimate and its progress lines (the command
        line passes one that writes to stderr).

    Returns
    -------
    Report

    Raises
    ------
    TrajectoryError
        Unusable input: unreadable file, missing keys, wrong shapes or version,
        files that describe different problems, no stage to compare.
    PatchRoleError
        Inputs whose patch roles cannot be determined (named).
    UsageError
        An unknown convention, or a convention with a reference file.
    ConfigError
        Before any file is read, an argument of the wrong kind, named: rtol or
        atol not a finite number >= 0, explain_steps not a whole number >= 1,
        explain not a bool, a convention or stages of another type, an
        unknown or empty stage selection.
    """
    explain_steps = _check_tolerances(rtol, atol, explain, explain_steps, strict_precision)
    stages = _check_stages(stages)
    convention = _check_convention(convention)
    conv = None if convention is None else parse_convention(convention)
    if conv == Convention():
        conv = None
    if conv is not None and ref_path is not None:
        raise UsageError(
            "--convention replays THEIRS under conventions; it cannot be "
            "combined with a reference file"
        )
    theirs = as_trajectory(theirs_path, "<arrays: theirs>", "crosscheck: theirs")
    ref = None if ref_path is None else as_trajectory(ref_path, "<arrays: ref>", "crosscheck: ref")
    names = _stages_to_compare(theirs, ref, stages)
    reference = (
        "replay (refimpl.train from the file's inputs)"
        if ref is None and conv is None
        else f"replay under {conv.label()}"
        if ref is None
        else ref.path
    )
    _check_budgets(theirs, names, replay=ref is None, explain=explain, explain_steps=explain_steps)
    report = Report(str(theirs.path), reference, rtol, atol)
    report.consistency = check_file(theirs, names, conv, replay=ref is None, rtol=rtol)
    if ref is not None:
        for s in sorted(set(theirs.stages) ^ set(ref.stages), key=STAGES.index):
            if not stages or s in stages:
                where = theirs.path if s in theirs.stages else ref.path
                report.notes.append(f"stage {s} is only in {where}: not compared")
    for s in names:
        _compare_stage(
            report,
            theirs.stage(s),
            None if ref is None else ref.stage(s),
            conv,
            (theirs, ref),
            strict_precision,
        )
    if explain and not report.agree:
        failed = report.failed_stages()
        explained = [s for s in failed if _explain_skipped(report, s) is None]
        _check_explain_budget(theirs, names, ref is None, explained, explain_steps)
        for s in failed:
            report.explanations[s] = _explain(report, theirs, s, explain_steps, progress)
    return report


EXPLAIN_RUNS = 16
"""A bound of explain mode's work in full-length replays: the candidates'
screening on a prefix plus the few full replays (docs: README, explain mode)."""


def replay_cost(view, steps=None, runs=1):
    """(bytes, multiply-adds) of replaying ``runs`` times ``steps`` steps
    (default: the file's ``steps[-1]``) of a stage (:mod:`refimpl.budget`)."""
    T = view.T if steps is None else steps
    n, P, d = view.X.shape
    m = view.W0.shape[1]
    K = len(view.steps)
    memory = 8 * (n * P * d + (K + 3) * 2 * m * d + 3 * K * 2 * m * n + 3 * n * P * 2 * m + (T + 1))
    return memory, runs * stage_work(n, P, d, m, T)


def _check_decompose_budget(traj):
    """ResourceError before :func:`decompose` projects anything when the
    projections of the stages without coefficients (the basis' Gram matrix,
    every snapshot projected, rebuilt and compared) exceed the budgets."""
    memory = work = 0.0
    shown = {}
    for s in traj.stages:
        if traj.has_coefficients[s]:
            continue
        view = traj.stage(s)
        n, _, d = view.X.shape
        K, m, r = len(view.steps), view.W0.shape[1], n + view.signals.shape[0]
        memory = max(memory, 8.0 * (4 * K * 2 * m * d + 3 * K * 2 * m * r + (r + n) * d + r * r))
        work += r * r * d + 3.0 * K * 2 * m * d * r
        shown = {"snapshots": K, "n": n, "m": m, "d": d}
    check(f"decomposing {traj.path}", memory, work, tuple(shown), shown)


def check_replay(view, doing, steps=None, runs=1):
    """ResourceError before replaying ``runs`` times ``steps`` steps (default:
    the file's) of a stage when the work or memory exceeds the budget."""
    T = view.T if steps is None else steps
    n, _, d = view.X.shape
    memory, work = replay_cost(view, steps, runs)
    shown = {"T": T, "n": n, "m": view.W0.shape[1], "d": d}
    check(f"{doing} stage {view.name} of {view.path}", memory, work, tuple(shown), shown)


def _reference_run(report, view, ref_view, conv, files, precision=False):
    """The reference run of a stage, where its coefficients came from, and
    the tolerances and floors of a convention replay (``precision``: the
    inputs of a float32 file judged at float32 precision)."""
    s = view.name
    if ref_view is None and conv is None:
        return _stage_run(replay(view)), "tracked", {}, {}
    if ref_view is None:
        ref_run, ref_note, tolerances, floors, judged = convention_replay(view, conv, report.rtol)
        report.notes.append(f"{s}: {judged}")
        return ref_run, ref_note, tolerances, floors
    ref_view.roles()
    differ = check_same_problem(*files, s)
    if precision and differ:
        rounded = [k for k in differ if k not in check_same_problem(*files, s, float32=True)]
        differ = [k for k in differ if k not in rounded]
        if rounded:
            report.notes.append(
                f"{s}: the file's {', '.join(rounded)} are the reference's rounded to float32 "
                "(the same inputs at float32 precision)"
            )
    if differ:
        report.notes.append(
            f"{s}: the inputs differ ({', '.join(differ)}); the runs "
            "cannot agree except by accident"
        )
        report.rows.append(Row(s, "inputs", first_step=0, note="differ: " + ", ".join(differ)))
    return (*file_run(ref_view), {}, {})


def _compare_stage(report, view, ref_view, conv, files, strict_precision=False):
    s = view.name
    roles = view.roles()  # refuses undeterminable inputs, naming them
    f32 = float32_file(view)
    precision = f32 and not strict_precision
    if precision and conv is not None and conv.dtype != "float32":
        conv = replace(conv, dtype="float32")
        report.notes.append(
            f"{s}: the file's weights are float32 numbers: replayed under {conv.label()} "
            "(float32 arithmetic added; --strict-precision replays the conventions as given)"
        )
    their_run, their_note = file_run(view)
    ref_run, ref_note, tolerances, floors = _reference_run(
        report, view, ref_view, conv, files, precision
    )
    basis = basis_note(view, roles)
    if basis:
        report.notes.append(f"{s}: {basis}")
    if f32 and not precision:
        report.notes.append(
            f"{s}: the file's weights are float32 numbers: snapshot 0 is "
            "compared with float32(W0) and the step-0 loss at float32 "
            "resolution (storage, not dynamics)"
        )
    if view.b0 is not None and "b" not in ref_run and view.b is None:
        report.notes.append(
            f"{s}: the file's model has a bias (s/b0) but stores no s/b; the reference has none"
        )
    notes = _coefficient_notes(their_run, their_note, ref_run, ref_note)
    if not np.array_equal(their_run["steps"], ref_run["steps"]):
        common = np.intersect1d(their_run["steps"], ref_run["steps"])
        report.notes.append(
            f"{s}: the snapshot steps differ; compared at the {common.size} common ones"
        )

    def compare(tolerances, floors):
        return compare_runs(
            s,
            their_run,
            ref_run,
            report.rtol,
            report.atol,
            notes=notes,
            float32=f32,
            tolerances=tolerances,
            floors=floors,
        )

    if precision and conv is None:
        rows, judged = judge_at_float32(view, compare, report.rtol, lambda: _check_float32(view))
        report.notes.append(f"{s}: {judged.pop('line')}")
        report.precision[s] = judged
    else:
        rows = compare(tolerances, floors)
    report.rows.extend(rows)


def _check_float32(view):
    """ResourceError before the two replays of the float32 judgement of a
    stage when they exceed the budgets."""
    check_replay(
        view, "the float32 judgement (two replays; --strict-precision skips it) of", runs=2
    )


def _explain_skipped(report, s):
    """Why explain mode does not run on a failed stage, or None when it does."""
    rows = {r.quantity: r for r in report.rows if r.stage == s}
    if not rows.get("inputs", Row(s, "inputs")).ok:
        return "the two files' inputs differ"
    if all(rows[q].ok for q in ("W", "loss", "b", "length") if q in rows):
        return (
            "weights and loss agree; only the coefficients differ, so the "
            "difference is in how the coefficients were computed, not in the "
            "dynamics"
        )
    return None


def _explain(report, theirs, s, explain_steps, progress=None):
    skipped = _explain_skipped(report, s)
    if skipped is not None:
        return {"skipped": skipped}
    return explain_stage(theirs, s, report.rtol, report.atol, explain_steps, progress=progress)


def decompose(path, out=None):
    """Add coefficients recovered by projection to every stage of a trajectory
    file that has weights only; the file (or ``out``) is written atomically.

    Parameters
    ----------
    path : str or PathLike
        The trajectory file (coefficients optional).
    out : str or PathLike, optional
        Where to write; default ``path`` itself.

    Returns
    -------
    dict of str to float
        The stages that got coefficients, each with its relative
        reconstruction error (:func:`.coefficients.span_error`, also recorded
        in ``provenance_json`` as ``projection_residual``): above
        :data:`.coefficients.SPAN_TOLERANCE` the weights are not in the span
        of the data and the coefficients describe their projection only.

    Raises
    ------
    TrajectoryError
        Unusable file, or coefficients that cannot be recovered.
    PatchRoleError
        Inputs whose patch roles cannot be determined (named).
    UsageError
        The output exists and is not a regular file, or cannot be written
        (checked before any work: :func:`refimpl.files.check_output`).
    """
    check_output(path if out is None else out)
    traj = load(path, require_coefficients=False)
    _check_decompose_budget(traj)
    arrays = dict(traj.arrays)
    added = {}
    for s in traj.stages:
        if traj.has_coefficients[s]:
            continue
        view = traj.stage(s)
        view.roles()
        try:
            coef = project_view(view)
        except ValueError as exc:
            raise TrajectoryError(f"{traj.path}: stage {s!r}: {exc}") from None
        for key, value in zip(COEFFICIENT_KEYS, coef, strict=True):
            arrays[f"{s}/{key}"] = value
        added[s] = span_error(view, coef)
    if added:
        prov = dict(traj.provenance) if isinstance(traj.provenance, dict) else {}
        prov["coefficients_by_projection"] = sorted(
            set(prov.get("coefficients_by_projection", [])) | set(added)
        )
        old = prov.get("projection_residual")
        prov["projection_residual"] = {**(old if isinstance(old, dict) else {}), **added}
        arrays["provenance_json"] = np.str_(json.dumps(prov))
    if added or out is not None:
        save(path if out is None else out, arrays)
    return added
