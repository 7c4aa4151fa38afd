"""Validation: a plain PyTorch implementation agrees with refimpl's exact dynamics.

A refimpl run (upstream, transfer with frozen inherited filters, fine-tuning
and scratch, weight decay in every stage, >= 1000 steps per stage) is written
to a trajectory file; ``validation/torch_client.py`` (nn.Module, autograd,
torch.optim.SGD) trains the same three stages from that file's inputs and
writes its own weights-only file; ``refimpl.crosscheck`` replays the inputs
and compares W, the loss at every step, and gamma, rho_bar, rho_under
(recovered from the client's weights by projection, MODEL.md section 4). The
claim holds when every quantity agrees within 1e-10 relative in float64. The
same client in float32 shows the size of the drift that single precision
causes, and explain mode is asked to name it.

Run: ``python validation/crosscheck.py [--quick] [--out DIR]`` or
``python -m refimpl validate crosscheck``. Needs torch (the ``torch`` extra);
without it the script reports FAIL with the install line.
"""
from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

NAME = "crosscheck"
CLAIM = ("a plain PyTorch implementation (nn.Module, autograd, torch.optim.SGD, float64) "
         "reproduces refimpl's exact GD dynamics within 1e-10 relative over >= 1000 steps, "
         "with weight decay and frozen inherited filters")
TOLERANCE = 1e-10


def config(quick):
    """The run checked: weight decay in every stage, inherited filters frozen."""
    from refimpl.config import Config

    size = (dict(d=120, m=4, n_up=30, n_down=12, steps_up=1000, steps_down=1000)
            if quick else
            dict(d=400, m=8, n_up=80, n_down=20, steps_up=2000, steps_down=2000))
    return Config(**size, u_norm=4.0, v_up_norm=1.0, v_down_norm=1.0, sigma_p_up=1.0,
                  sigma_p_down=1.0, flip_up=0.0, flip_down=0.1, eta=1.0, sigma_0=0.01,
                  weight_decay_up=0.001, weight_decay=0.005, alpha=0.5, freeze_inherited=True,
                  granularity="filter", snapshots=21, epsilon=0.0, n_test=2000, seed=20240)


def _load_client():
    path = Path(__file__).resolve().parent / "torch_client.py"
    spec = importlib.util.spec_from_file_location("refimpl_validation_torch_client", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _snapshot_drift(theirs_path, ref_path):
    """Per stage and snapshot: max|W_theirs - W_ref| / max|W_ref| (rows for a CSV)."""
    from refimpl.trajectory import load

    a, b = load(theirs_path, require_coefficients=False), load(ref_path)
    rows = []
    for s in b.stages:
        Wa, Wb, steps = a.get(s, "W"), b.get(s, "W"), b.get(s, "steps")
        for k, t in enumerate(steps):
            scale = np.abs(Wb[k]).max()
            rows.append((s, int(t), float(np.abs(Wa[k] - Wb[k]).max() / scale)))
    return rows


def _figure(folder, drift):
    from refimpl import plotting

    if not plotting.available():
        return []
    plt = plotting.pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    styles = {"up": "-", "down": "--", "scratch": ":"}
    for label, rows, color in (("torch float64", drift["float64"], "C0"),
                               ("torch float32", drift["float32"], "C3")):
        for s in styles:
            pts = [(t, max(v, 1e-18)) for st, t, v in rows if st == s]
            if pts:
                t, v = zip(*pts)
                ax.semilogy(t, v, styles[s], color=color, marker="o", ms=3,
                            label=f"{label}, {s}")
    ax.axhline(TOLERANCE, color="k", lw=0.8)
    ax.text(0, TOLERANCE * 1.5, "1e-10", fontsize=8)
    ax.set_xlabel("GD step")
    ax.set_ylabel("max|W_torch - W_refimpl| / max|W_refimpl|")
    ax.set_title("PyTorch client vs refimpl (1e-18 plotted for identical)")
    ax.legend(fontsize=7, ncol=2)
    return [plotting.save(fig, folder / "crosscheck_drift.png")]


def run(out, quick=False, jobs=1):
    """Run the check; see the module docstring. ``jobs`` is unused (one run).

    BLAS runs single-threaded here (threadpoolctl, when installed): with torch
    loaded beside numpy's BLAS, multithreaded products of these small matrices
    were 3-10x slower on a busy 2-core machine."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:           # pragma: no cover - only slower
        return _run(out, quick)
    with threadpool_limits(1):
        return _run(out, quick)


def _run(out, quick):
    from refimpl import crosscheck as cc
    from refimpl.trajectory import save
    from refimpl.transfer import run_experiment
    from refimpl.validate import figure_note, script_out, verdict_line, write_csv, write_json

    folder = script_out(out, NAME)
    cfg = config(quick)
    if importlib.util.find_spec("torch") is None:
        statistic = "torch is not installed: pip install torch==2.13.0 (the torch extra)"
        return {"name": NAME, "claim": CLAIM, "statistic": statistic, "verdict": "FAIL",
                "markdown": f"## {NAME}\n\n{verdict_line('FAIL', CLAIM, statistic)}\n"}
    client = _load_client()
    timings = {}
    t0 = time.monotonic()
    exp = run_experiment(cfg)
    ref = folder / "refimpl.npz"
    save(ref, exp)
    timings["refimpl run"] = time.monotonic() - t0
    paths = {}
    for dtype in ("float64", "float32"):
        t0 = time.monotonic()
        paths[dtype] = folder / f"torch_{dtype}.npz"
        save(paths[dtype], client.client_arrays(ref, dtype=dtype))
        timings[f"torch client {dtype}"] = time.monotonic() - t0
    t0 = time.monotonic()
    rep64 = cc.crosscheck(paths["float64"], rtol=TOLERANCE)
    rep64_files = cc.crosscheck(paths["float64"], ref, rtol=TOLERANCE)
    timings["crosscheck float64 (replay and two-file)"] = time.monotonic() - t0
    t0 = time.monotonic()
    rep32 = cc.crosscheck(paths["float32"], rtol=TOLERANCE)
    timings["crosscheck float32 with explain"] = time.monotonic() - t0
    for rep, name in ((rep64, "report_float64.txt"), (rep64_files, "report_float64_vs_file.txt"),
                      (rep32, "report_float32.txt")):
        (folder / name).write_text(rep.format() + "\n")

    worst64 = max(r.max_rel for r in rep64.rows + rep64_files.rows)
    compared64 = all(not r.skipped for r in rep64.rows)
    frozen = int((~exp.stages["down"].trainable).sum())
    steps = min(s.T for s in exp.stages.values())
    decays = [s.weight_decay for s in exp.stages.values()]
    passed = (rep64.status == 0 and rep64_files.status == 0 and compared64
              and worst64 <= TOLERANCE and steps >= 1000 and frozen > 0 and min(decays) > 0)
    drift32 = {(r.stage, r.quantity): r for r in rep32.rows}
    w32 = max(drift32[(s, "W")].max_rel for s in exp.stages)
    l32 = max(drift32[(s, "loss")].max_rel for s in exp.stages)
    named32 = {s: ex.get("matches", []) for s, ex in rep32.explanations.items()}
    all_named = all(named32.get(s) == ["float32"] for s in exp.stages)
    statistic = (f"float64 client: largest relative difference {worst64:.2g} over W, loss, "
                 f"gamma, rho_bar, rho_under of 3 stages x {steps} steps (tolerance 1e-10); "
                 f"float32 client drift: W {w32:.2g}, loss {l32:.2g} relative"
                 + ("; explain mode names float32 in every stage" if all_named else
                    f"; explain mode names {named32}"))

    csv_rows = [(client_dtype, r.stage, r.quantity, r.max_abs, r.max_rel,
                 "" if r.first_step is None else r.first_step, r.compared, r.note)
                for client_dtype, rep in (("float64", rep64), ("float32", rep32))
                for r in rep.rows]
    write_csv(folder / "crosscheck.csv",
              ["client", "stage", "quantity", "max_abs", "max_rel", "first_step_exceeding_1e-10",
               "compared", "note"], csv_rows)
    drift = {"float64": _snapshot_drift(paths["float64"], ref),
             "float32": _snapshot_drift(paths["float32"], ref)}
    write_csv(folder / "drift.csv", ["client", "stage", "step", "W_max_rel"],
              [(k, *row) for k, rows in drift.items() for row in rows])
    import torch
    write_json(folder / "crosscheck.json", {
        "claim": CLAIM, "verdict": "PASS" if passed else "FAIL", "statistic": statistic,
        "config": cfg.to_dict(), "torch": torch.__version__, "tolerance": TOLERANCE,
        "steps_per_stage": {s: st.T for s, st in exp.stages.items()},
        "weight_decay": {s: st.weight_decay for s, st in exp.stages.items()},
        "frozen_filters_down": frozen, "float64_replay": rep64.to_dict(),
        "float64_vs_file": rep64_files.to_dict(), "float32_replay": rep32.to_dict(),
        "seconds": timings})
    figs = _figure(folder, drift)

    def table(rep):
        lines = ["| stage | quantity | max abs | max rel | first step > tol | source |",
                 "| --- | --- | --- | --- | --- | --- |"]
        for r in rep.rows:
            first = "—" if r.first_step is None else str(r.first_step)
            source = r.note or ("torch client vs refimpl replay")
            lines.append(f"| {r.stage} | {r.quantity} | {r.max_abs:.3g} | {r.max_rel:.3g} | "
                         f"{first} | {source} |")
        return "\n".join(lines)

    ex_lines = []
    for s, ex in rep32.explanations.items():
        ex_lines += [f"- `{s}`: " + (", ".join(
            f"{v['name']} (W {v['W_max_rel']:.2g}, loss {v['loss_max_rel']:.2g}"
            f"{', agrees at rtol %.2g' % v['rtol'] if v['agrees'] else ''})"
            for v in ex.get("variants", []) if v.get("tested")) or ex.get("skipped", ""))]
    c = cfg
    md = [f"## {NAME}", "", verdict_line("PASS" if passed else "FAIL", CLAIM, statistic), "",
          f"Run: d={c.d}, m={c.m}, n_up={c.n_up}, n_down={c.n_down}, eta={c.eta}, "
          f"{c.steps_up} upstream and {c.steps_down} downstream steps, weight decay "
          f"{c.weight_decay_up} (up) and {c.weight_decay} (down, scratch), alpha={c.alpha} "
          f"with the {frozen} inherited filters frozen, seed {c.seed}. The client "
          f"(`validation/torch_client.py`, torch {torch.__version__}) trains from the "
          "refimpl file's inputs and stores weights and loss only; its coefficients are "
          "recovered by projection. `python -m refimpl crosscheck torch_float64.npz` "
          "(replay of the inputs) gives:", "", table(rep64), "",
          f"Compared with the refimpl file directly (two-file mode) the largest relative "
          f"difference is {max(r.max_rel for r in rep64_files.rows):.2g}.", "",
          "The same client in float32 (all weights are float32 numbers) drifts from the "
          "exact float64 dynamics by:", "", table(rep32), "",
          "Explain mode on the float32 file (each variant replayed from the file's inputs; "
          f"float32 judged at {cc.FLOAT32_FACTOR:g} times a float32 replay's own drift from "
          "the float64 one, and named only when the file's weights are float32 numbers):",
          "", *ex_lines, "",
          figure_note(figs), "",
          "Files: `crosscheck.json`, `crosscheck.csv`, `drift.csv`, the three trajectory "
          "files and the text reports `report_*.txt`. Timing: "
          + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()) + "."]
    return {"name": NAME, "claim": CLAIM, "statistic": statistic,
            "verdict": "PASS" if passed else "FAIL", "markdown": "\n".join(md) + "\n",
            "max_rel_float64": worst64, "float32_W_drift": w32, "float32_loss_drift": l32}


if __name__ == "__main__":
    from refimpl.validate import script_main
    sys.exit(script_main(sys.modules[__name__]))
