"""crosscheck: framework implementations agree with refimpl's exact dynamics,
and explain mode names what a framework model does differently.

1. A refimpl run (upstream, transfer with frozen inherited filters,
   fine-tuning and scratch, weight decay in every stage, 2000 steps per stage;
   quick: 1000) is written to a trajectory file.
2. The PyTorch client (:mod:`refimpl.crosscheck.torch_client`: ``nn.Module``,
   autograd, ``torch.optim.SGD``) and, when jax is installed, the JAX client
   (:mod:`refimpl.crosscheck.jax_client`: ``jax.value_and_grad``, a jitted
   SGD step) train the three stages from that file's inputs in float64 and
   write weights-only files. ``crosscheck`` replays each file's inputs and
   compares W, the loss at every step, and gamma, rho_bar, rho_under
   (recovered from the client's weights by projection, docs/model.md §4.4);
   the torch file is also compared with the refimpl file directly.
3. The torch client in float32 shows the size of single precision's drift;
   explain mode is asked to name it (and its time is measured).
4. A default ``nn.Conv1d`` model as people write it (Kou et al.'s
   ``LinearCNN``: bias on, mean over patches, sum over filters, float32,
   ``CrossEntropyLoss``, plain SGD; :data:`~refimpl.crosscheck.torch_client.CONV1D_MODEL`)
   trained on Kou et al.'s data (patches in random order, noise not
   orthogonal to the signal), its initial bias stored as ``up/b0``: explain
   mode must name all four departures.

Verdict (:func:`decide`): PASS when every float64 client agrees within
1e-10 relative in every quantity of every stage (every quantity compared),
the run has >= 1000 steps per stage, frozen filters and weight decay in every
stage, and explain names exactly filter_sum, patch_mean, bias and float32 for
the Conv1d model. Without torch the claim is SKIPPED (its JSON says why);
without jax the JAX client is reported as not run.
"""

from __future__ import annotations

import time

import numpy as np

from .. import files
from ..config import Config
from ..lab import figures as F
from ..lab import report as R

NAME = "crosscheck"
CLAIM = (
    "plain PyTorch and JAX implementations (autograd, SGD, float64) reproduce refimpl's "
    "exact GD dynamics within 1e-10 relative over >= 1000 steps, with weight decay and "
    "frozen inherited filters; explain mode names every departure of a default float32 "
    "nn.Conv1d model"
)
SOURCE = "implementation"
TOLERANCE = 1e-10
MIN_STEPS = 1000
CONV1D_DEPARTURES = ["filter_sum", "patch_mean", "bias", "float32"]


def config(quick):
    """The run checked: weight decay in every stage, inherited filters frozen."""
    size = (
        dict(d=120, m=4, n_up=30, n_down=12, steps_up=1000, steps_down=1000)
        if quick
        else dict(d=400, m=8, n_up=80, n_down=20, steps_up=2000, steps_down=2000)
    )
    return Config(
        **size,
        u_norm=4.0,
        v_up_norm=1.0,
        v_down_norm=1.0,
        sigma_p_up=1.0,
        sigma_p_down=1.0,
        flip_up=0.0,
        flip_down=0.1,
        eta=1.0,
        sigma_0=0.01,
        weight_decay_up=0.001,
        weight_decay=0.005,
        alpha=0.5,
        freeze_inherited=True,
        granularity="filter",
        snapshots=21,
        epsilon=0.0,
        n_test=2000,
        seed=20240,
    )


def decide(max_rel, all_compared, steps, frozen, decays, conv1d_named, tolerance=TOLERANCE):
    """The verdict from the measured numbers (pure: no files, no runs).

    Parameters
    ----------
    max_rel : dict of str to float or None
        Per float64 client, the largest relative difference over every
        quantity and stage (None: the client did not run; NaN: missing).
    all_compared : bool
        Every quantity of every stage was compared (none skipped).
    steps : int
        The fewest steps of a stage.
    frozen : int
        Frozen filters in the ``down`` stage.
    decays : sequence of float
        Weight decay of every stage.
    conv1d_named : list of str or None
        What explain named for the Conv1d model (None: not run).

    Returns
    -------
    verdict : {"PASS", "FAIL"}
    reasons : list of str
        Why it failed (empty for PASS).
    missing : int
        Values the verdict relies on that are missing (non-finite).
    """
    reasons, missing = [], 0
    ran = {k: v for k, v in max_rel.items() if v is not None}
    if not ran:
        reasons.append("no client ran")
    for client, value in ran.items():
        if not np.isfinite(value):
            missing += 1
            reasons.append(f"{client}: no finite difference")
        elif value > tolerance:
            reasons.append(f"{client}: largest relative difference {value:.2g} > {tolerance:g}")
    if not all_compared:
        reasons.append("some quantity was not compared")
    if steps < MIN_STEPS:
        reasons.append(f"only {steps} steps per stage (< {MIN_STEPS})")
    if frozen <= 0:
        reasons.append("no frozen filter")
    if not decays or min(decays) <= 0:
        reasons.append("a stage without weight decay")
    if conv1d_named != CONV1D_DEPARTURES:
        reasons.append(
            f"explain named {conv1d_named} for the Conv1d model, not {CONV1D_DEPARTURES}"
        )
    return ("FAIL" if reasons else "PASS"), reasons, missing


def _snapshot_drift(theirs, ref):
    """Per stage and snapshot: max|W_theirs - W_ref| / max|W_ref| (rows for a CSV)."""
    from ..trajectory import load

    a, b = load(theirs, require_coefficients=False), load(ref)
    rows = []
    for s in b.stages:
        Wa, Wb = a.stage(s).W, b.stage(s).W
        for k, t in enumerate(b.stage(s).steps):
            rows.append((s, int(t), float(np.abs(Wa[k] - Wb[k]).max() / np.abs(Wb[k]).max())))
    return rows


def _figure(path, drift):
    if not F.available():
        return []
    fig, ax = F.subplots(figsize=(6.4, 4.0))
    styles = {"up": "-", "down": "--", "scratch": ":"}
    for i, (label, rows) in enumerate(drift.items()):
        for s, style in styles.items():
            pts = [(t, max(v, 1e-18)) for st, t, v in rows if st == s]
            if pts:
                t, v = zip(*pts)
                ax.semilogy(t, v, style, color=f"C{i}", marker="o", ms=3, label=f"{label}, {s}")
    ax.axhline(TOLERANCE, color="k", lw=0.8)
    ax.text(0, TOLERANCE * 1.5, "1e-10", fontsize=8)
    ax.set_xlabel("GD step")
    ax.set_ylabel("max|W_client - W_refimpl| / max|W_refimpl|")
    ax.set_title("framework clients vs refimpl (1e-18 plotted for identical)")
    ax.legend(fontsize=7, ncol=2)
    return [F.save(fig, path)]


def _table(report):
    rows = [
        (
            r.stage,
            r.quantity,
            r.max_abs,
            r.max_rel,
            "—" if r.first_step is None else str(r.first_step),
            r.note or "client vs refimpl replay",
        )
        for r in report.rows
    ]
    return R.markdown_table(
        ["stage", "quantity", "max abs", "max rel", "first step > tol", "source"], rows
    )


def _conv1d(folder, quick):
    """Explain mode on a default nn.Conv1d model (item 4 of the docstring)."""
    from .. import crosscheck as cc
    from ..crosscheck import torch_client
    from ..trajectory import save

    steps = 100 if quick else 500
    data = torch_client.kou_data(np.random.default_rng(20230226), 20, 100)
    path = folder / "conv1d.npz"
    save(
        path,
        torch_client.conv1d_arrays(
            data, m=10, eta=0.1, steps=steps, snapshots=np.arange(0, steps + 1, steps // 10)
        ),
    )
    t0 = time.monotonic()
    report = cc.crosscheck(path)
    seconds = time.monotonic() - t0
    (folder / "report_conv1d.txt").write_text(report.format() + "\n")
    return report, seconds


def run(out, quick=False, jobs=1):
    """Run the check; see the module docstring. ``jobs`` is unused (one run).

    BLAS runs single-threaded here (threadpoolctl, when installed): with torch
    loaded beside numpy's BLAS, multithreaded products of these small matrices
    were 3-10x slower on a busy 2-core machine."""
    from ..crosscheck import torch_client

    folder = R.claim_folder(out, NAME)
    if not torch_client.available():
        reason = "torch not installed: pip install torch==2.13.0 (the torch extra)"
        files.write_json(
            folder / "crosscheck.json",
            {"claim": CLAIM, "verdict": "SKIPPED", "status": "skipped", "skip_reason": reason},
        )
        return R.skipped(NAME, CLAIM, SOURCE, reason)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - only slower
        return _run(folder, quick)
    with threadpool_limits(1):
        return _run(folder, quick)


def _run(folder, quick):
    from .. import crosscheck as cc
    from ..crosscheck import jax_client, torch_client
    from ..trajectory import save
    from ..transfer import run_experiment

    cfg = config(quick)
    timings = {}
    t0 = time.monotonic()
    exp = run_experiment(cfg)
    ref = folder / "refimpl.npz"
    save(ref, exp)
    timings["refimpl run"] = time.monotonic() - t0
    clients = {"torch": torch_client}
    if jax_client.available():
        clients["jax"] = jax_client
    reports, paths = {}, {}
    for name, client in clients.items():
        t0 = time.monotonic()
        paths[name] = folder / f"{name}_float64.npz"
        save(paths[name], client.client_arrays(ref))
        timings[f"{name} client float64"] = time.monotonic() - t0
        reports[name] = cc.crosscheck(paths[name], rtol=TOLERANCE)
    reports["torch vs file"] = cc.crosscheck(paths["torch"], ref, rtol=TOLERANCE)
    t0 = time.monotonic()
    paths["torch32"] = folder / "torch_float32.npz"
    save(paths["torch32"], torch_client.client_arrays(ref, dtype="float32"))
    timings["torch client float32"] = time.monotonic() - t0
    t0 = time.monotonic()
    rep32 = cc.crosscheck(paths["torch32"], rtol=TOLERANCE)
    timings["crosscheck float32 with explain (3 stages)"] = time.monotonic() - t0
    conv_report, timings["crosscheck Conv1d model with explain"] = _conv1d(folder, quick)
    for key, rep in list(reports.items()) + [("float32", rep32)]:
        (folder / f"report_{key.replace(' ', '_')}.txt").write_text(rep.format() + "\n")

    max_rel = {name: max(r.max_rel for r in reports[name].rows) for name in clients}
    max_rel["torch vs file"] = max(r.max_rel for r in reports["torch vs file"].rows)
    max_rel.setdefault("jax", None)
    compared = all(not r.skipped for rep in reports.values() for r in rep.rows)
    frozen = int((~exp.stages["down"].trainable).sum())
    steps = min(s.T for s in exp.stages.values())
    decays = [s.weight_decay for s in exp.stages.values()]
    conv_ex = conv_report.explanations.get("up", {})
    named = conv_ex.get("explanation")
    verdict, reasons, missing = decide(max_rel, compared, steps, frozen, decays, named)
    named32 = {s: ex.get("explanation") for s, ex in rep32.explanations.items()}
    drift32 = {q: max(r.max_rel for r in rep32.rows if r.quantity == q) for q in ("W", "loss")}
    ran = [c for c in ("torch", "jax") if max_rel.get(c) is not None]
    statistic = (
        ", ".join(f"{c} float64 client within {max_rel[c]:.2g}" for c in ran)
        + f" relative over W, loss, gamma, rho_bar, rho_under of 3 stages x {steps} "
        f"steps (tolerance 1e-10)"
        + (
            ""
            if "jax" in ran
            else "; JAX not installed (pip install jax jaxlib): its client not run"
        )
        + f"; Conv1d model: explain names {' + '.join(named or []) or 'nothing'}"
        + (f"; {'; '.join(reasons)}" if reasons else "")
    )
    csv_rows = [
        (
            key,
            r.stage,
            r.quantity,
            r.max_abs,
            r.max_rel,
            "" if r.first_step is None else r.first_step,
            r.compared,
            r.note,
        )
        for key, rep in list(reports.items()) + [("torch float32", rep32), ("conv1d", conv_report)]
        for r in rep.rows
    ]
    files.write_csv(
        folder / "crosscheck.csv",
        [
            "client",
            "stage",
            "quantity",
            "max_abs",
            "max_rel",
            "first_step_exceeding_tolerance",
            "compared",
            "note",
        ],
        csv_rows,
    )
    drift = {f"{c} float64": _snapshot_drift(paths[c], ref) for c in ran}
    drift["torch float32"] = _snapshot_drift(paths["torch32"], ref)
    files.write_csv(
        folder / "drift.csv",
        ["client", "stage", "step", "W_max_rel"],
        [(k, *row) for k, rows in drift.items() for row in rows],
    )
    import torch

    versions = {"torch": torch.__version__}
    if "jax" in clients:
        import jax

        versions["jax"] = jax.__version__
    files.write_json(
        folder / "crosscheck.json",
        {
            "claim": CLAIM,
            "verdict": verdict,
            "status": "ran",
            "statistic": statistic,
            "reasons": reasons,
            "config": cfg.to_dict(),
            "versions": versions,
            "tolerance": TOLERANCE,
            "max_rel_float64": max_rel,
            "steps_per_stage": {s: st.T for s, st in exp.stages.items()},
            "weight_decay": {s: st.weight_decay for s, st in exp.stages.items()},
            "frozen_filters_down": frozen,
            "float32_named": named32,
            "float32_drift": drift32,
            "conv1d_explanation": conv_ex,
            "seconds": timings,
            "reports": {k: r.to_dict() for k, r in reports.items()},
            "float32_replay": rep32.to_dict(),
            "conv1d": conv_report.to_dict(),
        },
    )
    figs = _figure(folder / "crosscheck_drift.png", drift)
    body = _body(
        cfg, frozen, versions, reports, rep32, conv_report, named32, drift32, timings, figs
    )
    return R.result(
        NAME,
        CLAIM,
        verdict,
        statistic,
        body,
        missing=missing,
        source=SOURCE,
        max_rel_float64=max_rel,
        float32_W_drift=drift32["W"],
        float32_loss_drift=drift32["loss"],
        conv1d_named=named,
    )


def _body(cfg, frozen, versions, reports, rep32, conv_report, named32, drift32, timings, figs):
    from ..crosscheck import format_explanation
    from ..crosscheck.torch_client import CONV1D_MODEL

    c = cfg
    conv_lines = format_explanation("up", conv_report.explanations.get("up", {"skipped": "-"}))
    md = [
        f"Run: d={c.d}, m={c.m}, n_up={c.n_up}, n_down={c.n_down}, eta={c.eta}, "
        f"{c.steps_up} upstream and {c.steps_down} downstream steps, weight decay "
        f"{c.weight_decay_up} (up) and {c.weight_decay} (down, scratch), alpha={c.alpha} "
        f"with the {frozen} inherited filters frozen, seed {c.seed}. The clients "
        f"({', '.join(f'{k} {v}' for k, v in versions.items())}) train from the refimpl "
        "file's inputs and store weights and loss only; their coefficients are recovered "
        "by projection. `python -m refimpl crosscheck torch_float64.npz` (replay of the "
        "inputs) gives:",
        "",
        _table(reports["torch"]),
        "",
    ]
    if "jax" in reports:
        md += ["The JAX client (`jax_float64.npz`):", "", _table(reports["jax"]), ""]
    md += [
        f"Compared with the refimpl file directly (two-file mode) the torch client's "
        f"largest relative difference is "
        f"{max(r.max_rel for r in reports['torch vs file'].rows):.2g}.",
        "",
        f"The torch client in float32 drifts from the exact float64 dynamics by up to "
        f"{drift32['W']:.2g} (W) and {drift32['loss']:.2g} (loss) relative; explain mode "
        "(float32 candidates judged against the drift of their own float32 replay) names: "
        + "; ".join(f"`{s}`: {' + '.join(v or []) or 'nothing'}" for s, v in named32.items())
        + ".",
        "",
        "A default `nn.Conv1d` model as people write it (Kou et al.'s `syntheticrelu.py`, "
        "their data generator: patches in random order, noise not orthogonal to the "
        "signal), trained with `CrossEntropyLoss` and plain SGD in float32, its initial "
        "bias stored as `up/b0`:",
        "",
        "```python",
        CONV1D_MODEL.rstrip(),
        "```",
        "",
        "`python -m refimpl crosscheck conv1d.npz` explains:",
        "",
        "```",
        *conv_lines,
        "```",
        "",
        R.figure_note(figs),
        "",
        "Files: `crosscheck.json`, `crosscheck.csv`, `drift.csv`, the trajectory files and "
        "the text reports `report_*.txt`. Timing: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
        + ".",
    ]
    return "\n".join(md)
