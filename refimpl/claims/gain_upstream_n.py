"""gain_upstream_n: the transfer gain against the upstream sample size N_1,
with the universal knowledge and the inherited noise energy beside it
(docs/model.md §s 4 and 8).

Regime: :data:`refimpl.validate.TRANSFER_BASE` with |u| = 1 (a moderate shared
signal, so the gain is neither 0 nor saturated), N_1 from 10 to 400. Test:
a monotone increase of the gain with N_1 seed by seed
(:func:`refimpl.validate.trend`: per-seed Spearman rho, Page's L test,
one-sided, level 0.01); the trends of the universal knowledge K = j<w, u> of
the inherited filters at the start of fine-tuning and of their inherited
noise energy are reported beside it (two-sided). Any missing gain value
fails the verdict.
"""


from .. import files
from ..lab import figures as F
from ..lab import report as R
from ..lab import stats as S
from ..lab.stats import SIGNIFICANCE
from ..lab.sweep import run_sweep
from ..theory import indicators
from ._base import transfer_base

NAME = "gain_upstream_n"
CLAIM = "the gain err_scratch - err_transfer grows with the upstream sample size N_1"
SOURCE = "paper"


def decide(ns, gain):
    """The verdict from the measured gains (pure: no files, no sweeps).

    Parameters
    ----------
    ns : sequence of int, shape (k,)
        The values of N_1 (k >= 3 distinct).
    gain : array of shape (k, seeds)
        err_scratch - err_transfer per point and seed (NaN: missing).

    Returns
    -------
    dict
        ``verdict`` ("PASS" when the one-sided Page trend test of an increase
        has rho > 0 and p < SIGNIFICANCE, and no value is missing; else
        "FAIL"), ``verdict_tests`` (the same without the missing-value rule,
        what ``gain_upstream_n.json`` records), ``trend`` and ``missing``.
    """
    tr = S.trend(ns, gain, "greater")
    missing = S.n_missing(gain)
    tests = "PASS" if (tr["rho"] > 0 and tr["p"] < SIGNIFICANCE) else "FAIL"
    return {"verdict": "FAIL" if missing else tests, "verdict_tests": tests, "trend": tr,
            "missing": missing}


def _figures(folder, ns, sw, base, reps):
    g = sw.mean("gain")
    figs = F.line_figure(folder / "gain_upstream_n.png", ns,
                         {"gain": (g, sw.se("gain")),
                          "err_transfer": (sw.mean("err_transfer"), sw.se("err_transfer")),
                          "err_scratch": (sw.mean("err_scratch"), sw.se("err_scratch"))},
                         "N_1 (upstream samples)", "clean test error / gain",
                         f"gain vs N_1 (|u| = {base.u_norm:g}; mean ± se, {reps} seeds)",
                         hline=0.0, xlog=True)
    figs += F.line_figure(folder / "gain_upstream_n_knowledge.png", ns,
                          {"universal knowledge K (inherited, start)":
                           (sw.mean("K_inh_start"), sw.se("K_inh_start"))},
                          "N_1 (upstream samples)", "K = j<w, u>",
                          "what the inherited filters carry", xlog=True,
                          twin=("inherited noise energy",
                                {"inherited noise energy": (sw.mean("inh_noise_energy"),
                                                            sw.se("inh_noise_energy"))}))
    return figs


def _body(base, rows, metrics, tk, te, figs):
    table = R.markdown_table(
        ["N_1", "gain", "err_transfer", "err_scratch", "K inherited (start)",
         "inherited noise energy", "upstream error", "Gamma_inh"],
        [[str(r[0])] + [R.fmt_mean_se(r[1 + 2 * k], r[2 + 2 * k]) for k in range(len(metrics))]
         + [r[-1]] for r in rows])
    return "\n\n".join([
        f"Regime: d = {base.d}, m = {base.m}, N_2 = {base.n_down}, |u| = {base.u_norm:g}, "
        f"|v_1| = |v_2| = {base.v_up_norm:g}, sigma_p = {base.sigma_p_up:g}, p_2 = {base.flip_down:g}, "
        f"alpha = {base.alpha:g}, {base.steps_down} GD steps per stage. Test: a monotone increase "
        f"of the gain with N_1 seed by seed (per-seed Spearman rho, Page's L test, one-sided, "
        f"level {SIGNIFICANCE}).",
        table,
        f"Beside it, two-sided: universal knowledge against N_1: {R.fmt_trend(tk)}; inherited "
        f"noise energy against N_1: {R.fmt_trend(te)}.",
        R.figure_note(figs)])


def run(out, quick=False, jobs=1):
    folder = R.claim_folder(out, NAME)
    ns = [10, 20, 40] if quick else [10, 25, 50, 100, 200, 400]
    reps = 3 if quick else 20
    base = transfer_base(quick, u_norm=1.0)
    grid = [base.replace(n_up=n) for n in ns]
    metrics = ["gain", "err_transfer", "err_scratch", "K_inh_start", "inh_noise_energy", "err_up"]
    sw = run_sweep(grid, replicates=reps, jobs=jobs, cache=R.cache_dir(out), label=NAME, salt=NAME,
                   metrics=metrics)
    dec = decide(ns, sw.values("gain"))
    tr, missing = dec["trend"], dec["missing"]
    tk = S.trend(ns, sw.values("K_inh_start"), "two-sided")         # reported beside it
    te = S.trend(ns, sw.values("inh_noise_energy"), "two-sided")
    g = sw.mean("gain")
    statistic = (f"gain grows with N_1: {R.fmt_trend(tr)}, one-sided ({len(ns)} values "
                 f"of N_1 x {reps} seeds; gain {g[0]:+.3f} at N_1 = {ns[0]} to {g[-1]:+.3f} at "
                 f"N_1 = {ns[-1]})")
    header = ["n_up"] + [h for m in metrics for h in (m, m + "_se")] + ["gamma_inh"]
    rows = [[n] + [v for m in metrics for v in (sw.mean(m)[i], sw.se(m)[i])]
            + [indicators(grid[i])["gamma_inh"]] for i, n in enumerate(ns)]
    files.write_csv(folder / "gain_upstream_n.csv", header, rows)
    files.write_json(folder / "gain_upstream_n.json", {
        "claim": CLAIM, "verdict": dec["verdict_tests"], "statistic": statistic,
        "trend_gain": tr, "trend_universal_knowledge": tk, "trend_noise_energy": te,
        "n_missing": missing, "replicates": reps, "base_config": base.to_dict(), "n_up": ns,
        "table": [dict(zip(header, r)) for r in rows],
        "per_seed": {m: sw.values(m) for m in metrics}})
    figs = _figures(folder, ns, sw, base, reps)
    body = _body(base, rows, metrics, tk, te, figs)
    return R.result(NAME, CLAIM, dec["verdict"], statistic, body, source=SOURCE, missing=missing)
