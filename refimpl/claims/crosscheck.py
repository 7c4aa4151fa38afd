"""crosscheck: plain PyTorch and JAX implementations reproduce refimpl's exact
GD dynamics (docs/model.md §3, coefficients by projection §4.4), and explain
mode names every departure of a default float32 ``nn.Conv1d`` model. The
design is :data:`PROTOCOL`; the clients are :mod:`refimpl.crosscheck.torch_client`
and :mod:`refimpl.crosscheck.jax_client`."""

from __future__ import annotations

import contextlib
import importlib
import tempfile
import time
from pathlib import Path

import numpy as np

from ..lab import figures as F
from ..lab.claim import Figure, Outcome, Protocol, Size, Skip, Table
from . import _base as B

MIN_STEPS = 1000
CONV1D_DEPARTURES = ["filter_sum", "patch_mean", "bias", "float32"]
TORCH_HINT = "torch not installed: pip install torch==2.13.0 (the torch extra)"


def _size(quick, d, m, n_up, n_down, steps, conv1d_steps):
    """The run checked (weight decay in every stage, inherited filters frozen)
    and the Conv1d model's run."""
    run = B.transfer_base(
        quick,
        **dict(d=d, m=m, n_up=n_up, n_down=n_down, steps_up=steps, steps_down=steps),
        u_norm=4.0,
        weight_decay_up=0.001,
        weight_decay=0.005,
        freeze_inherited=True,
        snapshots=21,
        n_test=2000,
        seed=20240,
    )
    conv1d = dict(n=20, d=100, m=10, eta=0.1, steps=conv1d_steps, seed=20230226)
    return Size({"run": run}, 1, clients=["torch", "jax"], tolerance=1e-10, conv1d=conv1d)


PROTOCOL = Protocol(
    name="crosscheck",
    claim=(
        "plain PyTorch and JAX implementations (autograd, SGD, float64) reproduce refimpl's "
        "exact GD dynamics within 1e-10 relative over >= 1000 steps, with weight decay and "
        "frozen inherited filters; explain mode names every departure of a default float32 "
        "nn.Conv1d model"
    ),
    source="implementation",
    full=_size(False, 400, 8, 80, 20, 2000, 500),
    quick=_size(True, 120, 4, 30, 12, 1000, 100),
    statistic=(
        "the largest relative difference of each float64 client from refimpl's replay of the "
        "client's own inputs, over W and the loss at every step and gamma, rho_bar, rho_under "
        "(recovered from the client's weights by projection) of the three stages (upstream; "
        "fine-tuning with the inherited filters frozen; scratch); the torch file also against "
        "the refimpl file directly; and what explain mode names for a default float32 "
        "nn.Conv1d model"
    ),
    pass_rule=(
        f"every float64 client that ran within the tolerance in every quantity of every stage, "
        f"every quantity compared, >= {MIN_STEPS} steps per stage, frozen filters, weight decay "
        f"in every stage, and explain names exactly {' + '.join(CONV1D_DEPARTURES)} for the "
        f"Conv1d model; SKIPPED without torch (without jax its client is reported as not run)"
    ),
    fixed="2026-11-29",
    pairing=(
        "every client trains the three stages from the refimpl file's inputs (data, initial "
        "weights, inherited mask, step size, weight decay, snapshot steps) and stores weights "
        "and loss only, so the runs differ in the implementation alone"
    ),
    rules={"tolerance": "relative difference <= the size's tolerance"},
    notes={
        "float32": "the torch client in float32 shows the size of single precision's drift; "
        "explain mode is asked to name it (reported, not in the verdict)",
        "conv1d": "Kou et al.'s LinearCNN (bias on, mean over patches, sum over filters, "
        "float32, CrossEntropyLoss, plain SGD) on Kou et al.'s data (patches in random order, "
        "noise not orthogonal to the signal), its initial bias stored as up/b0",
        "threads": "BLAS runs single-threaded (threadpoolctl, when installed): with torch "
        "loaded beside numpy's BLAS, multithreaded products of these small matrices were "
        "3-10x slower on a busy 2-core machine",
    },
)


def measure(size, sweep):
    """The refimpl run, the installed clients, the float32 replay and the Conv1d
    model, their trajectory files in a temporary folder (``sweep`` is unused)."""
    from ..crosscheck import torch_client

    if not torch_client.available():
        raise Skip(TORCH_HINT)
    with contextlib.ExitStack() as stack:
        with contextlib.suppress(ImportError):  # without threadpoolctl only slower
            from threadpoolctl import threadpool_limits

            stack.enter_context(threadpool_limits(1))
        return _measure(size, Path(stack.enter_context(tempfile.TemporaryDirectory())))


@contextlib.contextmanager
def _clock(seconds, key):
    t0 = time.monotonic()
    yield
    seconds[key] = time.monotonic() - t0


def _measure(size, folder):
    from .. import crosscheck as cc
    from ..crosscheck import jax_client, torch_client
    from ..trajectory import save
    from ..transfer import run_experiment

    seconds, reports, tol = {}, {}, size.tolerance
    names = {"refimpl": "refimpl", "torch32": "torch_float32", "conv1d": "conv1d"}
    paths = {k: folder / f"{v}.npz" for k, v in names.items()}
    ref = paths["refimpl"]
    with _clock(seconds, "refimpl run"):
        exp = run_experiment(size.configs["run"])
        save(ref, exp)
    modules = {"torch": torch_client, "jax": jax_client}
    clients = [c for c in size.clients if modules[c].available()]
    for name in clients:
        paths[name] = folder / f"{name}_float64.npz"
        with _clock(seconds, f"{name} client float64"):
            save(paths[name], modules[name].client_arrays(ref))
        reports[name] = cc.crosscheck(paths[name], rtol=tol)
    reports["torch vs file"] = cc.crosscheck(paths["torch"], ref, rtol=tol)
    with _clock(seconds, "torch client float32"):
        save(paths["torch32"], torch_client.client_arrays(ref, dtype="float32"))
    with _clock(seconds, "crosscheck float32 with explain (3 stages)"):
        # judged at rtol (strict), so that explain runs on it and names float32
        reports["float32"] = cc.crosscheck(paths["torch32"], rtol=tol, strict_precision=True)
    c = size.conv1d
    data = torch_client.kou_data(np.random.default_rng(c["seed"]), c["n"], c["d"])
    snaps = np.arange(0, c["steps"] + 1, c["steps"] // 10)
    save(paths["conv1d"], torch_client.conv1d_arrays(data, c["m"], c["eta"], c["steps"], snaps))
    with _clock(seconds, "crosscheck Conv1d model with explain"):
        reports["conv1d"] = cc.crosscheck(paths["conv1d"], strict_precision=True)
    for rep in reports.values():  # the file names, not the temporary folder
        rep.theirs, rep.reference = (
            s.replace(f"{folder}/", "") for s in (rep.theirs, rep.reference)
        )
    drift = {f"{k} float64": _snapshot_drift(paths[k], ref) for k in clients}
    drift["torch float32"] = _snapshot_drift(paths["torch32"], ref)
    compared = [r for k in [*clients, "torch vs file"] for r in reports[k].rows]
    return {
        "max_rel": {k: _max_rel(reports.get(k)) for k in ("torch", "jax", "torch vs file")},
        "all_compared": all(not r.skipped for r in compared),
        "steps": {s: st.T for s, st in exp.stages.items()},
        "weight_decay": {s: st.weight_decay for s, st in exp.stages.items()},
        "frozen": int((~exp.stages["down"].trainable).sum()),
        "conv1d_named": reports["conv1d"].explanations.get("up", {}).get("explanation"),
        "reports": {k: r.to_dict() for k, r in reports.items()},
        "texts": {k: r.format() + "\n" for k, r in reports.items()},
        "drift": drift,
        "versions": {k: importlib.import_module(k).__version__ for k in clients},
        "seconds": seconds,
    }


def _max_rel(report):
    return None if report is None else max(r.max_rel for r in report.rows)


def _snapshot_drift(theirs, ref):
    """Per stage and snapshot: (stage, step, max|W_theirs - W_ref| / max|W_ref|)."""
    from ..trajectory import load

    a, b = load(theirs, require_coefficients=False), load(ref)
    rows = []
    for s in b.stages:
        Wa, Wb = a.stage(s).W, b.stage(s).W
        rows += [
            (s, int(t), float(np.abs(Wa[k] - Wb[k]).max() / np.abs(Wb[k]).max()))
            for k, t in enumerate(b.stage(s).steps)
        ]
    return rows


def decide(size, m):
    """PASS when every float64 client that ran is within ``size.tolerance`` (a
    non-finite difference is missing), every quantity was compared, every stage
    has >= MIN_STEPS steps and weight decay, filters are frozen, and explain
    names exactly CONV1D_DEPARTURES for the Conv1d model."""
    failures, missing = [], []
    ran = {k: v for k, v in m["max_rel"].items() if v is not None}
    checks = [
        (not ran, "no client ran"),
        (not m["all_compared"], "some quantity was not compared"),
        (
            min(m["steps"].values()) < MIN_STEPS,
            f"only {min(m['steps'].values())} steps per stage (< {MIN_STEPS})",
        ),
        (m["frozen"] <= 0, "no frozen filter"),
        (min(m["weight_decay"].values(), default=0) <= 0, "a stage without weight decay"),
        (
            m["conv1d_named"] != CONV1D_DEPARTURES,
            f"explain named {m['conv1d_named']} for the Conv1d model, not {CONV1D_DEPARTURES}",
        ),
    ]
    for client, value in ran.items():
        if not np.isfinite(value):
            missing.append(f"{client}: no finite difference")
        elif value > size.tolerance:
            failures.append(
                f"{client}: largest relative difference {value:.2g} > {size.tolerance:g}"
            )
    failures += [reason for failed, reason in checks if failed]
    return {
        "verdict": "FAIL" if failures or missing else "PASS",
        "verdict_tests": "FAIL" if failures else "PASS",
        "missing": len(missing),
        "reasons": missing + failures,
    }


def _statistic(size, m, dec):
    ran = [c for c in ("torch", "jax") if m["max_rel"].get(c) is not None]
    text = ", ".join(f"{c} float64 client within {m['max_rel'][c]:.2g}" for c in ran)
    text += (
        f" relative over W, loss, gamma, rho_bar, rho_under of 3 stages x "
        f"{min(m['steps'].values())} steps (tolerance {size.tolerance:g})"
    )
    if "jax" not in ran:
        text += "; JAX not installed (pip install jax jaxlib): its client not run"
    text += f"; Conv1d model: explain names {' + '.join(m['conv1d_named'] or []) or 'nothing'}"
    return text + "".join(f"; {r}" for r in dec["reasons"])


def _rows_table(report, title=""):
    header = ["stage", "quantity", "max abs", "max rel", "first step > tol", "source"]
    rows = [
        [r["stage"], r["quantity"], r["max_abs"], r["max_rel"]]
        + ["—" if r["first_step"] is None else str(r["first_step"])]
        + [r["note"] or "client vs refimpl replay"]
        for r in report["rows"]
    ]
    return Table(header, rows, title=title)


def _csv_tables(m):
    head = ["client", "stage", "quantity", "max_abs", "max_rel"]
    head += ["first_step_exceeding_tolerance", "compared", "note"]
    rows = [
        [{"float32": "torch float32"}.get(k, k), r["stage"], r["quantity"], r["max_abs"]]
        + [r["max_rel"], "" if r["first_step"] is None else r["first_step"]]
        + [r["compared"], r["note"]]
        for k, rep in m["reports"].items()
        for r in rep["rows"]
    ]
    drift = [[k, *row] for k, rows in m["drift"].items() for row in rows]
    return [
        Table(head, rows, name="crosscheck", show=False),
        Table(["client", "stage", "step", "W_max_rel"], drift, name="drift", show=False),
    ]


def _drift_figure(drift, tolerance):
    def draw(path):
        fig, ax = F.subplots(figsize=(6.4, 4.0))
        for i, (label, rows) in enumerate(drift.items()):
            for s, style in {"up": "-", "down": "--", "scratch": ":"}.items():
                pts = [(t, max(v, 1e-18)) for st, t, v in rows if st == s]
                if pts:
                    t, v = zip(*pts, strict=True)
                    ax.semilogy(t, v, style, color=f"C{i}", marker="o", ms=3, label=f"{label}, {s}")
        ax.axhline(tolerance, color="k", lw=0.8)
        ax.text(0, tolerance * 1.5, f"{tolerance:g}", fontsize=8)
        ax.set_xlabel("GD step")
        ax.set_ylabel("max|W_client - W_refimpl| / max|W_refimpl|")
        ax.set_title("framework clients vs refimpl (1e-18 plotted for identical)")
        ax.legend(fontsize=7, ncol=2)
        F.save(fig, path)

    return Figure("crosscheck_drift", draw)


def present(size, m, dec):
    from ..crosscheck import format_explanation
    from ..crosscheck.torch_client import CONV1D_MODEL

    c, reps = size.configs["run"], m["reports"]
    rep32, conv = reps["float32"], reps["conv1d"]
    named32 = {s: ex.get("explanation") for s, ex in rep32["explanations"].items()}
    drift32 = {
        q: max(r["max_rel"] for r in rep32["rows"] if r["quantity"] == q) for q in ("W", "loss")
    }
    conv_ex = conv["explanations"].get("up", {})
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    names32 = "; ".join(f"`{s}`: {' + '.join(v or []) or 'nothing'}" for s, v in named32.items())
    sections = [
        f"Run: d={c.d}, m={c.m}, n_up={c.n_up}, n_down={c.n_down}, eta={c.eta}, "
        f"{c.steps_up} upstream and {c.steps_down} downstream steps, weight decay "
        f"{c.weight_decay_up} (up) and {c.weight_decay} (down, scratch), alpha={c.alpha} "
        f"with the {m['frozen']} inherited filters frozen, seed {c.seed}. The clients "
        f"({versions}) train from the refimpl file's inputs and store weights and loss only; "
        "their coefficients are recovered by projection. `python -m refimpl crosscheck "
        "torch_float64.npz` (replay of the inputs) gives:",
        _rows_table(reps["torch"]),
        _rows_table(reps["jax"], "The JAX client (`jax_float64.npz`):") if "jax" in reps else "",
        f"Compared with the refimpl file directly (two-file mode) the torch client's "
        f"largest relative difference is {m['max_rel']['torch vs file']:.2g}.",
        f"The torch client in float32 drifts from the exact float64 dynamics by up to "
        f"{drift32['W']:.2g} (W) and {drift32['loss']:.2g} (loss) relative; explain mode "
        f"(float32 candidates judged against the drift of their own float32 replay) names: "
        f"{names32}.",
        "A default `nn.Conv1d` model as people write it (Kou et al.'s `syntheticrelu.py`, "
        "their data generator: patches in random order, noise not orthogonal to the "
        "signal), trained with `CrossEntropyLoss` and plain SGD in float32, its initial "
        "bias stored as `up/b0`:",
        f"```python\n{CONV1D_MODEL.rstrip()}\n```",
        "`python -m refimpl crosscheck conv1d.npz` explains:",
        "```\n" + "\n".join(format_explanation("up", conv_ex or {"skipped": "-"})) + "\n```",
        _drift_figure(m["drift"], size.tolerance),
        "Files: `crosscheck.json`, `crosscheck.csv`, `drift.csv` and the text reports "
        "`report_*.txt` (the trajectory files are temporary). Timing: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in m["seconds"].items())
        + ".",
        *_csv_tables(m),
    ]
    data = {
        "versions": m["versions"],
        "max_rel_float64": m["max_rel"],
        "steps_per_stage": m["steps"],
        "weight_decay": m["weight_decay"],
        "frozen_filters_down": m["frozen"],
        "float32_named": named32,
        "float32_drift": drift32,
        "conv1d_explanation": conv_ex,
        "seconds": m["seconds"],
        "reports": {k: reps[k] for k in reps if k not in ("float32", "conv1d")},
        "float32_replay": rep32,
        "conv1d": conv,
    }
    files = {f"report_{k.replace(' ', '_')}.txt": text for k, text in m["texts"].items()}
    return Outcome(_statistic(size, m, dec), sections, data, files)
